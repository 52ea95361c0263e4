//! The Diesel schema, shared by both backends (only portable SQL types: see STACK.md).

diesel::table! {
    accounts (id) {
        id -> Text,
        username -> Text,
        username_key -> Text,
        email -> Text,
        email_verified_at -> Nullable<Timestamp>,
        password_hash -> Text,
        password_changed_at -> Timestamp,
        role -> Text,
        created_at -> Timestamp,
        last_login_at -> Nullable<Timestamp>,
        username_skeleton -> Nullable<Text>,
        email_skeleton -> Nullable<Text>,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        account_id -> Text,
        created_at -> Timestamp,
        last_used_at -> Timestamp,
        expires_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        revoked_reason -> Nullable<Text>,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        second_factor -> Text,
        device_id -> Nullable<Text>,
    }
}

diesel::table! {
    devices (id) {
        id -> Text,
        account_id -> Text,
        token_hash -> Text,
        label -> Text,
        first_seen_at -> Timestamp,
        last_seen_at -> Timestamp,
    }
}

diesel::table! {
    refresh_tokens (token_hash) {
        token_hash -> Text,
        session_id -> Text,
        created_at -> Timestamp,
        rotated_at -> Nullable<Timestamp>,
        grace_uses -> Integer,
    }
}

diesel::table! {
    email_tokens (token_hash) {
        token_hash -> Text,
        purpose -> Text,
        account_id -> Text,
        email -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    outbox (id) {
        id -> Text,
        message_id -> Text,
        kind -> Text,
        recipient -> Text,
        subject -> Text,
        body_text -> Text,
        body_html -> Text,
        sealed -> Integer,
        created_at -> Timestamp,
        next_attempt_at -> Timestamp,
        attempts -> Integer,
        last_error -> Nullable<Text>,
        claimed_by -> Nullable<Text>,
        claimed_until -> Nullable<Timestamp>,
        sent_at -> Nullable<Timestamp>,
        request_id -> Nullable<Text>,
        failed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    audit_events (id) {
        id -> BigInt,
        event_type -> Text,
        actor -> Text,
        account_id -> Nullable<Text>,
        request_id -> Nullable<Text>,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        at -> Timestamp,
        details -> Text,
    }
}

diesel::table! {
    rate_limit_buckets (bucket) {
        bucket -> Text,
        tat -> BigInt,
    }
}

diesel::table! {
    totp_credentials (account_id) {
        account_id -> Text,
        secret_sealed -> Text,
        created_at -> Timestamp,
        confirmed_at -> Nullable<Timestamp>,
        last_used_step -> Nullable<BigInt>,
    }
}

diesel::table! {
    recovery_code_sets (id) {
        id -> Text,
        account_id -> Text,
        created_at -> Timestamp,
        superseded_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    recovery_codes (id) {
        id -> Text,
        set_id -> Text,
        account_id -> Text,
        lookup -> Text,
        code_hash -> Text,
        used_at -> Nullable<Timestamp>,
        used_ip -> Nullable<Text>,
        used_user_agent -> Nullable<Text>,
    }
}

diesel::table! {
    mfa_challenges (id) {
        id -> Text,
        account_id -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    recovery_requests (id) {
        id -> Text,
        username -> Text,
        account_id -> Nullable<Text>,
        contact_email -> Text,
        reason -> Text,
        status -> Text,
        tracking_token_hash -> Text,
        tracking_token_sealed -> Text,
        ownership_token_hash -> Nullable<Text>,
        ownership_token_sealed -> Nullable<Text>,
        ownership -> Text,
        ownership_answered_at -> Nullable<Timestamp>,
        duplicate_of -> Nullable<Text>,
        submitted_at -> Timestamp,
        updated_at -> Timestamp,
        decided_at -> Nullable<Timestamp>,
        decided_by -> Nullable<Text>,
        decision_note -> Nullable<Text>,
        deliver_to -> Nullable<Text>,
        deliver_justification -> Nullable<Text>,
        completion_token_hash -> Nullable<Text>,
        link_due_at -> Nullable<Timestamp>,
        link_sent_at -> Nullable<Timestamp>,
        link_expires_at -> Nullable<Timestamp>,
        completed_at -> Nullable<Timestamp>,
        submitted_ip -> Nullable<Text>,
        submitted_user_agent -> Nullable<Text>,
        submitted_device_id -> Nullable<Text>,
        first_approval_by -> Nullable<Text>,
        first_approval_at -> Nullable<Timestamp>,
        needs_info_since -> Nullable<Timestamp>,
        reminded_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    recovery_request_messages (id) {
        id -> Text,
        request_id -> Text,
        kind -> Text,
        author_id -> Nullable<Text>,
        body -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    heartbeats (id) {
        id -> Integer,
        beat_at -> Timestamp,
    }
}

diesel::table! {
    password_reset_jobs (id) {
        id -> Text,
        step -> Text,
        account_id -> Nullable<Text>,
        email_key -> Nullable<Text>,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        requested_at -> Timestamp,
    }
}

diesel::table! {
    lock_links (token_hash) {
        token_hash -> Text,
        account_id -> Text,
        notice -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
        restore_email -> Nullable<Text>,
        restore_skeleton -> Nullable<Text>,
        restore_until -> Nullable<Timestamp>,
    }
}

diesel::table! {
    account_locks (id) {
        id -> Text,
        account_id -> Text,
        notice -> Text,
        locked_at -> Timestamp,
        restored_email -> Nullable<Text>,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        unlocked_at -> Nullable<Timestamp>,
        unlocked_by -> Nullable<Text>,
    }
}

diesel::table! {
    email_address_changes (id) {
        id -> Text,
        account_id -> Text,
        old_email -> Text,
        new_email -> Text,
        how -> Text,
        changed_at -> Timestamp,
    }
}

diesel::joinable!(sessions -> accounts (account_id));
diesel::joinable!(devices -> accounts (account_id));
diesel::table! {
    recovery_request_attachments (id) {
        id -> Text,
        request_id -> Text,
        filename -> Text,
        content_type -> Text,
        size -> BigInt,
        wrapped_key -> Text,
        content -> Text,
        uploaded_at -> Timestamp,
    }
}

diesel::joinable!(recovery_request_messages -> recovery_requests (request_id));
diesel::joinable!(recovery_request_attachments -> recovery_requests (request_id));
diesel::joinable!(recovery_codes -> recovery_code_sets (set_id));
diesel::joinable!(refresh_tokens -> sessions (session_id));
diesel::joinable!(email_tokens -> accounts (account_id));

diesel::allow_tables_to_appear_in_same_query!(
    accounts,
    sessions,
    devices,
    refresh_tokens,
    email_tokens,
    outbox,
    audit_events,
    rate_limit_buckets,
    totp_credentials,
    recovery_code_sets,
    recovery_codes,
    mfa_challenges,
    recovery_requests,
    recovery_request_messages,
    recovery_request_attachments,
    heartbeats,
    password_reset_jobs,
    lock_links,
    account_locks,
    email_address_changes,
);

diesel::table! {
    passkeys (id) {
        id -> Text,
        account_id -> Text,
        credential_id -> Text,
        credential -> Text,
        name -> Text,
        sign_count -> BigInt,
        backup_eligible -> Integer,
        backed_up -> Integer,
        transports -> Nullable<Text>,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    webauthn_ceremonies (id) {
        id -> Text,
        account_id -> Text,
        kind -> Text,
        mfa_challenge_id -> Nullable<Text>,
        state -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}
