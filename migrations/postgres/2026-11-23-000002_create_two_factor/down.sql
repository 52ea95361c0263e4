DROP TABLE mfa_challenges;
DROP TABLE recovery_codes;
DROP TABLE recovery_code_sets;
DROP TABLE totp_credentials;
