"""widip: the WIDIP automation platform (Sentinel, Assist, WIBOT, SAFEGUARD)."""
