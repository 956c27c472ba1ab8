"""Hub integration tests (real Mosquitto, real PostgreSQL)."""
