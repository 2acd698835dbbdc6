"""Import mappings for the demo's offline files; also the examples in docs/imports.md."""

CRM = """\
# CRM export: one identify per customer record.
type: identify
message_id: crm_id
identifiers:
  email: email
  phone: phone
  crm_id: crm_id
traits:
  first_name: first_name
  last_name: last_name
  city: city
  country: country
  customer_since: {column: customer_since, type: date}
  newsletter: {column: newsletter, type: boolean}
  street: address
  postcode: postcode
  birthday: birth_date
"""

POS = """\
# Shop tills: one Order Completed per receipt, known by loyalty card (and sometimes e-mail).
type: track
event: Order Completed
message_id: receipt_id
timestamp: purchased_at
timestamp_format: "%d/%m/%Y %H:%M"
identifiers:
  loyalty_id: loyalty_card
  email: email
traits:                     # the loyalty card's holder, as enrolled at the till
  name: holder_name
  street: holder_address
  postcode: holder_postcode
  birthday: holder_birth_date   # day first (31/12/1980): the identity matcher reads both forms
properties:
  order_id: receipt_id
  store: store
  product: product
  category: category
  quantity: {column: quantity, type: integer}
  revenue: {column: total, type: number}
"""

CALLS = """\
# Call centre: one Call Completed per call, known only by the caller's phone number.
type: track
event: Call Completed
message_id: call_id
timestamp: called_at
identifiers:
  phone: caller
traits:
  country: line_country     # lets national numbers (06 12 ...) be read in the right country
properties:
  reason: reason
  duration_s: {column: duration_s, type: integer}
  agent: agent
"""
