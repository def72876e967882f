"""Microsoft 365 through Microsoft Graph: shared client and auth, mail, calendar."""
