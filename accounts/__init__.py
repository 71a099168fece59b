"""Accounts: logging in and its second step, TOTP enrolment, recovery codes, sign-up,
passwords, the login lockout policy and the admin site that requires a second factor."""
