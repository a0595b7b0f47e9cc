"""Operating a deployment: moving SQLite to PostgreSQL, backups and restores, and the schema's
invariants that prove the data survived (`dovecote db port`, `dovecote backup`/`restore`)."""
