"""The PBX wing: SMDR/CDR call records from bytes to events, sans-I/O, and the profiles that
say how (the model, and its loader: the one module here that reads files). See docs/house.md."""
