"""The five orderguard services, each owning its schema and talking only through Kafka."""
