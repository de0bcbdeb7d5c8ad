/** Injection token of the resolved (defaults + environment + user) module options. */
export const CACHE_MODULE_OPTIONS = 'CACHEKIT:MODULE_OPTIONS';

/** Injection token of the options exactly as the user passed them (before resolution). */
export const CACHE_USER_OPTIONS = 'CACHEKIT:USER_OPTIONS';

/** Logger context used by every log line this module writes. */
export const CACHE_LOGGER_CONTEXT = 'CacheModule';
