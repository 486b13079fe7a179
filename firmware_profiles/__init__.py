"""The bundled device profiles: data files only, read through importlib.resources."""
