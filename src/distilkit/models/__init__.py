"""Teacher loading, architecture adaptors, student construction."""
