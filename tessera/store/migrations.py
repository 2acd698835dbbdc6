"""Schema migrations, applied in order and recorded in `schema_version`.

Append new steps; never edit a step that has shipped.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE sources (
            id VARCHAR PRIMARY KEY,
            name VARCHAR NOT NULL UNIQUE,
            channel VARCHAR NOT NULL,
            write_key_hash VARCHAR NOT NULL,
            write_key_prefix VARCHAR NOT NULL,
            enabled BOOLEAN NOT NULL DEFAULT TRUE,
            created_at TIMESTAMP NOT NULL,
            rotated_at TIMESTAMP
        );
        -- The event log: append-only, ordered by seq, the source of truth (ARCHITECTURE §1).
        -- Times are naive UTC. Identifier columns are raw as sent; identity/ normalises them.
        CREATE TABLE events (
            seq BIGINT NOT NULL,
            source_id VARCHAR NOT NULL,
            channel VARCHAR NOT NULL,
            message_id VARCHAR NOT NULL,
            dedupe_key UBIGINT NOT NULL,
            type VARCHAR NOT NULL,
            event VARCHAR,
            name VARCHAR,
            user_id VARCHAR,
            anonymous_id VARCHAR,
            previous_id VARCHAR,
            group_id VARCHAR,
            email VARCHAR,
            phone VARCHAR,
            device_id VARCHAR,
            advertising_id VARCHAR,
            external_ids VARCHAR,
            timestamp TIMESTAMP NOT NULL,
            original_timestamp TIMESTAMP,
            sent_at TIMESTAMP,
            received_at TIMESTAMP NOT NULL,
            properties VARCHAR,
            traits VARCHAR,
            payload VARCHAR NOT NULL
        );
        -- The dead-letter table: what was refused, why, and the raw payload.
        CREATE TABLE rejected (
            id BIGINT NOT NULL,
            source_id VARCHAR,
            received_at TIMESTAMP NOT NULL,
            code VARCHAR NOT NULL,
            field VARCHAR,
            reason VARCHAR NOT NULL,
            message_id VARCHAR,
            payload VARCHAR
        );
        CREATE TABLE imports (
            id VARCHAR PRIMARY KEY,
            source_id VARCHAR NOT NULL,
            file_name VARCHAR NOT NULL,
            started_at TIMESTAMP NOT NULL,
            finished_at TIMESTAMP,
            status VARCHAR NOT NULL,
            rows BIGINT NOT NULL DEFAULT 0,
            accepted BIGINT NOT NULL DEFAULT 0,
            duplicates BIGINT NOT NULL DEFAULT 0,
            rejected BIGINT NOT NULL DEFAULT 0,
            reject_file VARCHAR
        );
        CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);
        """,
    ),
    (
        2,
        """
        -- Everything below is derived from the event log (tessera rebuild recomputes it),
        -- except identity_blocks, which records decisions people took (unmerges).
        CREATE TABLE pipeline_state (key VARCHAR PRIMARY KEY, value BIGINT NOT NULL);
        -- An identifier's link to the profile it joined; read through profiles.merged_into.
        CREATE TABLE identities (
            type VARCHAR NOT NULL,
            value VARCHAR NOT NULL,
            profile_id VARCHAR NOT NULL,
            first_seq BIGINT NOT NULL
        );
        CREATE INDEX identities_lookup ON identities (type, value);
        CREATE TABLE profiles (
            profile_id VARCHAR NOT NULL,
            created_seq BIGINT NOT NULL,
            merged_into VARCHAR,
            flagged VARCHAR
        );
        CREATE TABLE profile_summaries (
            profile_id VARCHAR NOT NULL,
            first_seen TIMESTAMP,
            last_seen TIMESTAMP,
            event_count BIGINT NOT NULL,
            channels VARCHAR NOT NULL,
            traits VARCHAR NOT NULL,
            trait_state VARCHAR NOT NULL,
            consent VARCHAR NOT NULL
        );
        CREATE TABLE event_profiles (seq BIGINT NOT NULL, profile_id VARCHAR NOT NULL);
        CREATE TABLE identity_ledger (
            id BIGINT NOT NULL,
            seq BIGINT NOT NULL,
            kind VARCHAR NOT NULL,
            profile_id VARCHAR NOT NULL,
            identifier VARCHAR,
            other_identifier VARCHAR,
            other_profile_id VARCHAR,
            rule VARCHAR
        );
        CREATE TABLE identity_blocks (
            first VARCHAR NOT NULL,
            second VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL,
            reason VARCHAR
        );
        CREATE TABLE computed_traits (
            profile_id VARCHAR NOT NULL,
            name VARCHAR NOT NULL,
            value VARCHAR,
            computed_at TIMESTAMP NOT NULL
        );
        CREATE TABLE computed_trait_definitions (
            name VARCHAR PRIMARY KEY,
            definition VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL
        );
        """,
    ),
    (
        3,
        """
        CREATE TABLE segments (
            id VARCHAR PRIMARY KEY,
            name VARCHAR NOT NULL UNIQUE,
            query VARCHAR NOT NULL,
            tree VARCHAR NOT NULL,
            description VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL,
            updated_at TIMESTAMP NOT NULL,
            evaluated_at TIMESTAMP
        );
        -- Membership history: one row per stay of a profile in a segment; open stays have
        -- no left_at. Current members are the open rows.
        CREATE TABLE segment_members (
            segment_id VARCHAR NOT NULL,
            profile_id VARCHAR NOT NULL,
            entered_at TIMESTAMP NOT NULL,
            left_at TIMESTAMP
        );
        """,
    ),
    (
        4,
        """
        -- Third-party data: taxonomies (IAB Audience / Content), their ancestor closure, the
        -- providers' segments with price and lifetime, and who is in them. Inputs, like
        -- sources: not derived from the event log, so a rebuild keeps them.
        CREATE TABLE taxonomy_nodes (
            taxonomy VARCHAR NOT NULL,
            id VARCHAR NOT NULL,
            parent_id VARCHAR,
            name VARCHAR NOT NULL,
            path VARCHAR NOT NULL,
            tier INTEGER NOT NULL,
            extension VARCHAR
        );
        CREATE TABLE taxonomy_closure (
            taxonomy VARCHAR NOT NULL,
            ancestor VARCHAR NOT NULL,
            descendant VARCHAR NOT NULL
        );
        CREATE TABLE third_party_segments (
            provider VARCHAR NOT NULL,
            taxonomy VARCHAR NOT NULL,
            segment_id VARCHAR NOT NULL,
            cpm DOUBLE,
            lifetime_days INTEGER NOT NULL,
            restrictions VARCHAR,
            updated_at TIMESTAMP NOT NULL
        );
        CREATE TABLE third_party_memberships (
            provider VARCHAR NOT NULL,
            taxonomy VARCHAR NOT NULL,
            segment_id VARCHAR NOT NULL,
            identifier_type VARCHAR NOT NULL,
            identifier_value VARCHAR NOT NULL,
            received_at TIMESTAMP NOT NULL,
            expires_at TIMESTAMP NOT NULL
        );
        """,
    ),
    (
        5,
        """
        -- Lookalike models: the seed, the method, the weights shown to users, the
        -- reach-accuracy curve and the held-out evaluation; and the audience picked.
        CREATE TABLE lookalikes (
            name VARCHAR PRIMARY KEY,
            seed VARCHAR NOT NULL,
            method VARCHAR NOT NULL,
            population VARCHAR NOT NULL,
            reach INTEGER NOT NULL,
            created_at TIMESTAMP NOT NULL,
            report VARCHAR NOT NULL
        );
        -- Every candidate's score and rank; the audience is the first `reach` ranks.
        CREATE TABLE lookalike_members (
            lookalike VARCHAR NOT NULL,
            profile_id VARCHAR NOT NULL,
            score DOUBLE NOT NULL,
            rank INTEGER NOT NULL
        );
        """,
    ),
    (
        6,
        """
        -- Campaign delivery and results per campaign, day and audience (from the ad
        -- platforms' reports), conversions with an identifier to join back to profiles,
        -- and the holdout share of audiences (who is held out is a hash, not a table).
        CREATE TABLE campaign_results (
            campaign VARCHAR NOT NULL,
            day DATE NOT NULL,
            audience VARCHAR,
            impressions BIGINT NOT NULL,
            clicks BIGINT NOT NULL,
            conversions BIGINT NOT NULL,
            cost DOUBLE NOT NULL,
            reach BIGINT,
            imported_at TIMESTAMP NOT NULL
        );
        CREATE TABLE campaign_conversions (
            campaign VARCHAR NOT NULL,
            day DATE,
            identifier_type VARCHAR NOT NULL,
            identifier_value VARCHAR NOT NULL,
            value DOUBLE
        );
        CREATE TABLE audience_holdouts (
            audience VARCHAR PRIMARY KEY,
            share DOUBLE NOT NULL,
            salt VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL
        );
        """,
    ),
    (
        7,
        """
        -- Signal traits: rules over page views and events (path, referrer, UTM, page
        -- category, device, country) with a lifetime; and which page paths belong to
        -- which content category (a taxonomy node, e.g. the IAB Content Taxonomy).
        CREATE TABLE signal_traits (
            name VARCHAR PRIMARY KEY,
            definition VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL
        );
        CREATE TABLE page_categories (
            prefix VARCHAR PRIMARY KEY,
            taxonomy VARCHAR NOT NULL,
            category_id VARCHAR NOT NULL
        );
        """,
    ),
    (
        8,
        """
        -- Segments whose SQL failed at their last evaluation (a date an older version let
        -- through, a value DuckDB refuses): the reason, shown in the list, the API and the
        -- console; the row goes when the segment is updated or evaluates again.
        CREATE TABLE segment_failures (
            segment_id VARCHAR PRIMARY KEY,
            failed_at TIMESTAMP NOT NULL,
            reason VARCHAR NOT NULL
        );
        """,
    ),
    (
        9,
        """
        -- Why an import ended other than done: failed (its error) or interrupted (its
        -- process stopped while it ran), shown beside its status.
        ALTER TABLE imports ADD COLUMN reason VARCHAR;
        """,
    ),
    (
        10,
        """
        -- The pipeline's dead letters: events of the log that made identity or profiles
        -- fail on their own, after TESSERA_PIPELINE_MAX_ATTEMPTS tries. The pipeline and a
        -- rebuild skip them (so both agree) until `tessera events replay-failed`; the event
        -- itself stays in the log. Not derived: a rebuild keeps it.
        CREATE TABLE pipeline_failures (
            seq BIGINT PRIMARY KEY,
            failed_at TIMESTAMP NOT NULL,
            attempts INTEGER NOT NULL,
            error_type VARCHAR NOT NULL,
            error VARCHAR NOT NULL,
            location VARCHAR
        );
        """,
    ),
    (
        11,
        """
        -- How far the loader has read each writer's files in the event log (log/<writer>/):
        -- the segment and the byte offset just past the last record loaded. Written in the
        -- same transaction as the events it loaded, so a crash between reading the files
        -- and committing loads those records again exactly once.
        CREATE TABLE log_positions (
            writer_id VARCHAR NOT NULL,
            segment BIGINT NOT NULL,
            byte_offset BIGINT NOT NULL
        );
        """,
    ),
    (
        12,
        """
        -- Computed traits kept incrementally (issue 12): per live profile, the aggregates
        -- of every computed trait in day buckets (JSON, profiles/aggregates.py), written
        -- with each batch; and the definitions they cover (a trait added or changed is
        -- filled from the log once). Derived: a rebuild empties and refills them.
        CREATE TABLE trait_aggregates (
            profile_id VARCHAR PRIMARY KEY,
            state VARCHAR NOT NULL
        );
        CREATE TABLE trait_aggregate_keys (
            key VARCHAR PRIMARY KEY,
            name VARCHAR NOT NULL
        );
        """,
    ),
    (
        13,
        """
        -- Destinations (issue 13): where events and audiences go. The log is the queue: each
        -- destination keeps its own position on the events table's seq and the audience
        -- members it has told about, so a restart resumes where it was. `config` is the
        -- kind's options as JSON; `secret` signs webhook bodies (it must be readable to
        -- sign, so it is not hashed; the data directory is owner-only).
        CREATE TABLE destinations (
            id VARCHAR PRIMARY KEY,
            name VARCHAR NOT NULL UNIQUE,
            kind VARCHAR NOT NULL,
            purpose VARCHAR NOT NULL,
            enabled BOOLEAN NOT NULL DEFAULT TRUE,
            config VARCHAR NOT NULL,
            secret VARCHAR,
            created_at TIMESTAMP NOT NULL,
            updated_at TIMESTAMP NOT NULL,
            secret_rotated_at TIMESTAMP
        );
        CREATE TABLE destination_positions (
            destination_id VARCHAR PRIMARY KEY,
            event_seq BIGINT NOT NULL,
            updated_at TIMESTAMP NOT NULL
        );
        -- The members each destination has been told about, per segment: the next sync
        -- sends the difference with the current members (entered / exited).
        CREATE TABLE destination_audience_members (
            destination_id VARCHAR NOT NULL,
            segment_id VARCHAR NOT NULL,
            profile_id VARCHAR NOT NULL,
            entered_at TIMESTAMP NOT NULL
        );
        CREATE SEQUENCE destination_dead_letter_ids;
        CREATE TABLE destination_dead_letters (
            id BIGINT NOT NULL,
            destination_id VARCHAR NOT NULL,
            failed_at TIMESTAMP NOT NULL,
            message_id VARCHAR NOT NULL,
            message VARCHAR NOT NULL,
            status INTEGER,
            reason VARCHAR NOT NULL,
            replay_requested BOOLEAN NOT NULL DEFAULT FALSE
        );
        -- The delivery log: per destination and minute, what happened to its messages.
        CREATE TABLE destination_deliveries (
            destination_id VARCHAR NOT NULL,
            minute TIMESTAMP NOT NULL,
            delivered BIGINT NOT NULL,
            retried BIGINT NOT NULL,
            failed BIGINT NOT NULL,
            suppressed BIGINT NOT NULL,
            dead_lettered BIGINT NOT NULL,
            p50_ms DOUBLE,
            p95_ms DOUBLE,
            p99_ms DOUBLE,
            PRIMARY KEY (destination_id, minute)
        );
        CREATE TABLE destination_errors (
            destination_id VARCHAR NOT NULL,
            failed_at TIMESTAMP NOT NULL,
            status INTEGER,
            error VARCHAR NOT NULL,
            body VARCHAR
        );
        """,
    ),
    (
        14,
        """
        -- The product catalogue (issue 14): what an event's product_id means. Upserted by
        -- `tessera catalog import`; a retired product stays (orders still name it) with
        -- retired_at set. `category` is a path written 'Sport > Running > Shoes';
        -- `attributes` is a JSON object of the file's other columns.
        CREATE TABLE products (
            product_id VARCHAR PRIMARY KEY,
            name VARCHAR,
            category VARCHAR,
            brand VARCHAR,
            price DOUBLE,
            currency VARCHAR,
            available BOOLEAN NOT NULL DEFAULT TRUE,
            retired_at TIMESTAMP,
            url VARCHAR,
            image_url VARCHAR,
            attributes VARCHAR,
            updated_at TIMESTAMP NOT NULL
        );
        -- One row per catalogue import: what it read, kept and refused (and where).
        CREATE TABLE catalog_imports (
            id VARCHAR PRIMARY KEY,
            file_name VARCHAR NOT NULL,
            started_at TIMESTAMP NOT NULL,
            finished_at TIMESTAMP,
            rows BIGINT NOT NULL DEFAULT 0,
            created BIGINT NOT NULL DEFAULT 0,
            updated BIGINT NOT NULL DEFAULT 0,
            rejected BIGINT NOT NULL DEFAULT 0,
            reject_file VARCHAR
        );
        -- Loyalty rules (points per euro per category, tier thresholds) as loaded by
        -- `tessera loyalty load`: one document, the JSON of the checked YAML.
        CREATE TABLE loyalty_rules (
            name VARCHAR PRIMARY KEY,
            document VARCHAR NOT NULL,
            loaded_at TIMESTAMP NOT NULL
        );
        """,
    ),
    (
        15,
        """
        -- Personalisation (tessera/personalize): the item-to-item model, offers, the
        -- publishable keys of the decision API, and every decision made.
        CREATE TABLE recommendation_models (
            id VARCHAR PRIMARY KEY,
            trained_at TIMESTAMP NOT NULL,
            people BIGINT NOT NULL,
            products BIGINT NOT NULL,
            interactions BIGINT NOT NULL,
            seconds DOUBLE NOT NULL
        );
        -- The products the events name, with what the events say of them (name, category,
        -- price): the catalogue, when there is one, says more (personalize/products.py).
        CREATE TABLE recommendation_products (
            product_id VARCHAR PRIMARY KEY,
            name VARCHAR,
            category VARCHAR,
            price DOUBLE,
            interactions BIGINT NOT NULL
        );
        -- Each product's nearest neighbours (cosine over who viewed, added and bought).
        CREATE TABLE recommendation_neighbours (
            product_id VARCHAR NOT NULL,
            neighbour_id VARCHAR NOT NULL,
            score DOUBLE NOT NULL
        );
        -- Popularity per scope: 'all', 'category:<name>' or 'segment:<name>'.
        CREATE TABLE recommendation_popular (
            scope VARCHAR NOT NULL,
            product_id VARCHAR NOT NULL,
            score DOUBLE NOT NULL
        );
        CREATE TABLE offers (
            id VARCHAR PRIMARY KEY,
            name VARCHAR NOT NULL UNIQUE,
            title VARCHAR NOT NULL,
            content VARCHAR NOT NULL,
            condition VARCHAR NOT NULL,
            tree VARCHAR NOT NULL,
            priority INTEGER NOT NULL,
            weight DOUBLE NOT NULL,
            channel VARCHAR NOT NULL,
            starts_at TIMESTAMP,
            ends_at TIMESTAMP,
            cap_per_day INTEGER,
            created_at TIMESTAMP NOT NULL,
            updated_at TIMESTAMP NOT NULL
        );
        CREATE TABLE publishable_keys (
            id VARCHAR PRIMARY KEY,
            source_id VARCHAR NOT NULL,
            key_hash VARCHAR NOT NULL,
            key_prefix VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL,
            revoked_at TIMESTAMP
        );
        CREATE SEQUENCE decision_ids;
        -- Every decision the decision API made, for attribution: which offer, why, which
        -- variant (an experiment's holdout is recorded too, with no offer).
        CREATE TABLE decisions (
            id BIGINT NOT NULL,
            decided_at TIMESTAMP NOT NULL,
            profile_id VARCHAR,
            visitor VARCHAR NOT NULL,
            source_id VARCHAR,
            channel VARCHAR NOT NULL,
            strategy VARCHAR NOT NULL,
            offer VARCHAR,
            variant VARCHAR NOT NULL,
            reason VARCHAR NOT NULL,
            eligible VARCHAR NOT NULL,
            recommendations VARCHAR NOT NULL,
            personal BOOLEAN NOT NULL
        );
        """,
    ),
    (
        16,
        """
        -- Access (issue 15): people who sign in, their personal API tokens, and the audit
        -- log. Passwords are argon2id hashes; tokens are SHA-256 digests (random and long,
        -- like write keys), so neither can be read back from the file.
        CREATE TABLE users (
            name VARCHAR PRIMARY KEY,
            role VARCHAR NOT NULL,
            password_hash VARCHAR NOT NULL,
            enabled BOOLEAN NOT NULL DEFAULT TRUE,
            created_at TIMESTAMP NOT NULL,
            updated_at TIMESTAMP NOT NULL,
            last_sign_in TIMESTAMP
        );
        CREATE TABLE api_tokens (
            id VARCHAR PRIMARY KEY,
            user_name VARCHAR NOT NULL,
            token_hash VARCHAR NOT NULL UNIQUE,
            token_prefix VARCHAR NOT NULL,
            scopes VARCHAR NOT NULL,
            description VARCHAR,
            created_at TIMESTAMP NOT NULL,
            expires_at TIMESTAMP,
            revoked_at TIMESTAMP,
            last_used TIMESTAMP
        );
        -- Append-only, each row's hash covering the previous row's (privacy/audit.py). The
        -- personal values (target, detail) enter the hash through their own digests, so an
        -- erasure can blank a value (redacted) and the chain still verifies.
        CREATE TABLE audit_log (
            seq BIGINT PRIMARY KEY,
            recorded_at TIMESTAMP NOT NULL,
            actor VARCHAR NOT NULL,
            role VARCHAR,
            action VARCHAR NOT NULL,
            target VARCHAR,
            detail VARCHAR,
            address VARCHAR,
            outcome VARCHAR NOT NULL,
            target_digest VARCHAR NOT NULL,
            detail_digest VARCHAR NOT NULL,
            redacted BOOLEAN NOT NULL DEFAULT FALSE,
            previous_hash VARCHAR NOT NULL,
            hash VARCHAR NOT NULL
        );
        """,
    ),
    (
        17,
        """
        -- Data-subject requests (issue 15): access, erasure and suppression. The subject is
        -- kept masked and as a salted hash (privacy/suppression.py), never in clear: the
        -- request outlives the person's data. `reasons` is a JSON list of what failed.
        CREATE TABLE privacy_requests (
            id VARCHAR PRIMARY KEY,
            kind VARCHAR NOT NULL,
            subject VARCHAR NOT NULL,
            subject_hash VARCHAR NOT NULL,
            state VARCHAR NOT NULL,
            received_at TIMESTAMP NOT NULL,
            updated_at TIMESTAMP NOT NULL,
            attempts INTEGER NOT NULL,
            reasons VARCHAR NOT NULL
        );
        -- One receipt per system an attempt reached: the log, each table, each file set,
        -- each destination, the database file and the final scan of the data directory.
        CREATE TABLE privacy_receipts (
            request_id VARCHAR NOT NULL,
            attempt INTEGER NOT NULL,
            position INTEGER NOT NULL,
            system VARCHAR NOT NULL,
            kind VARCHAR NOT NULL,
            removed BIGINT NOT NULL,
            status VARCHAR NOT NULL,
            detail VARCHAR NOT NULL,
            done_at TIMESTAMP NOT NULL
        );
        -- Erased or suppressed identifiers, as salted hashes only: new events carrying one
        -- are dropped at ingest (published to the collectors in DATA_DIR/suppressed.json).
        CREATE TABLE suppressed_identifiers (
            hash VARCHAR PRIMARY KEY,
            type VARCHAR NOT NULL,
            request_id VARCHAR,
            created_at TIMESTAMP NOT NULL
        );
        -- Retention: how long events (per source and/or event type), identifiers (per type)
        -- and inactive known profiles are kept; and each run with its counts.
        CREATE TABLE retention_policies (
            name VARCHAR PRIMARY KEY,
            scope VARCHAR NOT NULL,
            source VARCHAR,
            event VARCHAR,
            identifier_type VARCHAR,
            days INTEGER NOT NULL,
            created_at TIMESTAMP NOT NULL
        );
        CREATE TABLE retention_runs (
            id VARCHAR PRIMARY KEY,
            started_at TIMESTAMP NOT NULL,
            dry_run BOOLEAN NOT NULL,
            counts VARCHAR NOT NULL,
            seconds DOUBLE NOT NULL
        );
        -- Tracking plans: per source, the allowed events and JSON Schemas, and a mode; and
        -- the violations found at ingest, per event, with the path and the reason.
        CREATE TABLE tracking_plans (
            source_id VARCHAR PRIMARY KEY,
            mode VARCHAR NOT NULL,
            plan VARCHAR NOT NULL,
            updated_at TIMESTAMP NOT NULL
        );
        CREATE TABLE plan_violations (
            source_id VARCHAR NOT NULL,
            received_at TIMESTAMP NOT NULL,
            message_id VARCHAR,
            event VARCHAR,
            path VARCHAR NOT NULL,
            reason VARCHAR NOT NULL,
            blocked BOOLEAN NOT NULL
        );
        """,
    ),
    (
        18,
        """
        -- A segment may be exposed to the decision API (POST /v1/personalize answers its
        -- name to the visitor in it), flagged on the segment itself by a marketer.
        ALTER TABLE segments ADD COLUMN exposed BOOLEAN DEFAULT false;
        -- Traits (traits.NAME, computed.NAME) a decision may answer, flagged one by one
        -- (personalize/exposure.py), beside TESSERA_PERSONALIZE_EXPOSED_TRAITS.
        CREATE TABLE exposed_traits (
            name VARCHAR PRIMARY KEY,
            exposed_at TIMESTAMP NOT NULL
        );
        """,
    ),
    (
        20,
        """
        -- Predictive models (tessera/predict): each one's last fit, as JSON: the report the
        -- console and the API show, and the fitted numbers that score without refitting.
        CREATE TABLE prediction_models (
            name VARCHAR PRIMARY KEY,
            fitted_at TIMESTAMP NOT NULL,
            report VARCHAR NOT NULL,
            model VARCHAR
        );
        -- The scores: written beside the computed traits at each refresh (computed.NAME
        -- in segments), with the reasons a person's 360-degree view shows.
        CREATE TABLE predicted_traits (
            profile_id VARCHAR NOT NULL,
            name VARCHAR NOT NULL,
            value DOUBLE,
            reasons VARCHAR NOT NULL,
            fitted_at TIMESTAMP NOT NULL,
            scored_at TIMESTAMP NOT NULL,
            PRIMARY KEY (profile_id, name)
        );
        """,
    ),
    (
        21,
        """
        -- Probabilistic identity (identity/matching.py): pairs of profiles the matcher found
        -- alike, named by one identifier of each (profile ids change with merges; the
        -- identifiers do not). Decisions, not derived state: a rebuild keeps them and the
        -- identity graph links the 'linked' and 'accepted' pairs as it replays the log.
        CREATE TABLE identity_matches (
            match_id VARCHAR PRIMARY KEY,
            first VARCHAR NOT NULL,
            second VARCHAR NOT NULL,
            probability DOUBLE NOT NULL,
            match_weight DOUBLE NOT NULL,
            -- per field: the comparison level, its match weight and both values compared
            evidence VARCHAR NOT NULL,
            -- linked (above the upper threshold), review, accepted, rejected
            status VARCHAR NOT NULL,
            found_at TIMESTAMP NOT NULL,
            run_id VARCHAR NOT NULL,
            decided_at TIMESTAMP,
            reason VARCHAR
        );
        CREATE TABLE identity_match_runs (
            run_id VARCHAR PRIMARY KEY,
            mode VARCHAR NOT NULL,
            started_at TIMESTAMP NOT NULL,
            seconds DOUBLE NOT NULL,
            -- the last event the pipeline had processed: an incremental run compares the
            -- profiles created after it with everyone
            processed_seq BIGINT NOT NULL,
            profiles BIGINT NOT NULL,
            candidates BIGINT NOT NULL,
            linked BIGINT NOT NULL,
            review BIGINT NOT NULL,
            refused BIGINT NOT NULL,
            parameters VARCHAR NOT NULL
        );
        """,
    ),
    (
        22,
        """
        -- Backups taken (issue 15): where each went, so an erasure can say which backups
        -- still hold the person and leave them a note for `tessera restore` to erase again.
        -- folder is NULL for a backup streamed to a client (GET /api/backup) that did not
        -- say where it unpacked it.
        CREATE TABLE backups (
            taken_at TIMESTAMP NOT NULL,
            folder VARCHAR,
            last_seq BIGINT NOT NULL
        );
        """,
    ),
]
