"""spanlake's provider instrumentations (Anthropic, Amazon Bedrock, OpenAI) and their
shared helpers. Each provider lives in its own subpackage with a ``BaseInstrumentor``."""
