"""What more than one jobyard process needs: domain model, wire schemas, configuration,
the HTTP client and the Redis store."""
