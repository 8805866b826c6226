/**
 * The host's time zone: the zone Claude Code prints reset times in when its banner names none.
 * Easy to get wrong: this reads the host, so it lives with the adapters; the domain takes the zone as a parameter.
 */
export const hostTimeZone = (): string => Intl.DateTimeFormat().resolvedOptions().timeZone
