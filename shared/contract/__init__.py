"""The contract with services that publish to us or read from us.

The topic catalogue, the JSON Schemas and the AsyncAPI document generated from the event
models, the compatibility rules that keep a published version readable, the public schema
routes and the HTTP ingest endpoint for publishers that cannot speak Kafka.
"""
