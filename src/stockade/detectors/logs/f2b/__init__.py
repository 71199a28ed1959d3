"""Reading fail2ban's configuration (filter.d, jail.conf, jail.d) unchanged."""
