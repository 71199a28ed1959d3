"""Log detection: fail2ban-compatible filters, date detection, failure counting."""
