"""Network pieces shared by several probe kinds (TLS certificate details, ...)."""
