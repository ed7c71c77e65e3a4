"""The kopf operator: thin shells that read, call the core, and apply its decision."""
