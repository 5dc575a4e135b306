// The privileged role's name (--privileged-role-name) is written into SQL bare, unquoted, as the
// reference does, so it is restricted to a safe alphabet. Every user of the name checks it here.

/** True when `name` is non-empty and only lowercase ASCII letters and '_'. */
export function isPrivilegedRoleName(name: string): boolean {
  return /^[a-z_]+$/.test(name);
}
