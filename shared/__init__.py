"""What every orderguard service shares: settings, envelope, outbox, engine, HTTP app factory."""
