"""Mail ingestion: per-mailbox cursors, de-duplication, and the triage queue."""
