"""Local servers that speak the real APIs of GLPI, Observium, Phibee, Password Pusher, SMTP, AD and the LLMs."""
