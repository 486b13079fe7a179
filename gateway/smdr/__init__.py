"""SMDR/CDR call records: framing, splitting and normalizing (all sans-I/O)."""
