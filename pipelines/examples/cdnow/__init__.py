"""The CDNOW example: a real retailer's transaction log (Fader & Hardie), its map and `pyramid example cdnow`."""
