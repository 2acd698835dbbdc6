"""Personalisation: recommendations, offers and the decision API.

- `itemsim` (pure): the item-to-item model, trained from who viewed, added and bought what;
- `recommendations`: train it from the event log, store it, recommend from it;
- `offers` and `strategies`: offers with a condition in the segment language, and how one
  is chosen among those a person is eligible for;
- `keys`: publishable keys (`tpk_`), the only credential the decision API takes;
- `decisions`: the decision itself, served from memory (`Personalizer`), and its records;
- `callcentre`: what an agent sees when a caller gives a phone number or an e-mail.
"""
