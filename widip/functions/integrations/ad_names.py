"""What an Active Directory account name and mail address may look like: the patterns the AD client
enforces before any LDAP request and the tool schemas declare. Kept apart from the client so that
processes which only describe tools (web, MCP, llm) never import ldap3."""

#: sAMAccountName as accepted from callers and tool calls (AD allows more; we allow no LDAP metacharacters).
SAM_ACCOUNT_PATTERN = r"^(?!.*\.$)[A-Za-z0-9][A-Za-z0-9._-]{0,19}$"
EMAIL_PATTERN = r"^[A-Za-z0-9.!#$%&'+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$"
