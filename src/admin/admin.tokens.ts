/** Injection tokens of the admin application. */
export const CONFIG_STORE = Symbol('CONFIG_STORE');
export const ADMIN_LOGGER = Symbol('ADMIN_LOGGER');
export const ADMIN_OPTIONS = Symbol('ADMIN_OPTIONS');
