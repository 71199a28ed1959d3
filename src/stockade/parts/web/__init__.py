"""The web part: the dashboard served inside ``stockade run``."""
