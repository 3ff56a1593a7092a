"""Network pieces shared by the probe kinds (name resolution, TLS certificate details)."""
