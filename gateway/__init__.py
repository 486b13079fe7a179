"""pbxgw: a contact-center edge gateway (PBX call records and headsets to MQTT)."""

__version__ = "0.1.0"
