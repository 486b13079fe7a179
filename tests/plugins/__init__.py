"""pytest plugins: real processes (broker, gateway, subscriber) for the integration tests."""
