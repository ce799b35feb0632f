"""A trained run seen through its export: pictures and pages built on its SavedModel."""
