/**
 * The admin token's scopes. Reads need either (Kong's RBAC has read-only
 * admins too); writes need `gatehouse:admin`. A write handler's decorator adds
 * to its controller's, so a write needs (read OR admin) AND admin = admin.
 */
export const ADMIN_WRITE_SCOPE = 'gatehouse:admin';
export const ADMIN_READ_SCOPE = 'gatehouse:read';
export const ADMIN_READ_SCOPES = [ADMIN_READ_SCOPE, ADMIN_WRITE_SCOPE] as const;
