/// Role-based authorisation as the RI configures it: `[Roles]` gives each identity its
/// comma-separated roles, `[Authorizations]` each capability (by label or token) the roles
/// allowed to see and use it. Without an `[Authorizations]` section everything is allowed;
/// with one, a capability it does not name is allowed to nobody (deny unless allowed).
///
/// The RI matches a name of `[Authorizations]` against any label that contains it (so that a
/// relabelled specification still matches); this matches a capability's label or token
/// exactly, so that `ping` does not also open `ping-burst`. The INI format lower-cases keys
/// (the RI's configparser too, so that its identities with capitals never match): identities,
/// labels and tokens are compared here without case.
public struct Authorization: Sendable, Equatable {
    /// Identity → roles.
    public var roles: [String: Set<String>]
    /// Capability label or token → roles allowed; nil when not configured (all allowed).
    public var allowed: [String: Set<String>]?

    /// Everything allowed to everyone.
    public static let open = Authorization(roles: [:], allowed: nil)

    public init(roles: [String: Set<String>], allowed: [String: Set<String>]?) {
        self.roles = roles
        self.allowed = allowed
    }

    /// From the `[Roles]` and `[Authorizations]` sections' entries (either may be absent).
    public init(rolesSection: [(String, String)]?, authorizationsSection: [(String, String)]?) {
        func sets(_ entries: [(String, String)]) -> [String: Set<String>] {
            var out: [String: Set<String>] = [:]
            for (key, value) in entries {
                let items = value.split(separator: ",").map { String($0.filter { $0 != " " && $0 != "\t" }) }.filter { !$0.isEmpty }
                out[key.lowercased(), default: []].formUnion(items)
            }
            return out
        }
        self.init(roles: sets(rolesSection ?? []), allowed: authorizationsSection.map(sets))
    }

    /// Whether authorisations are configured.
    public var isEnforced: Bool { allowed != nil }

    /// Whether `identity` may see and use `capability`.
    public func allows(_ identity: String, _ capability: Capability) -> Bool {
        allows(identity, label: capability.statement.label, token: capability.token)
    }

    /// Whether `identity` may see and use the capability with `label` and `token`.
    public func allows(_ identity: String, label: String?, token: String) -> Bool {
        guard let allowed else { return true }
        guard let mine = roles[identity.lowercased()], !mine.isEmpty else { return false }
        if let label, let roles = allowed[label.lowercased()], !roles.isDisjoint(with: mine) { return true }
        if let roles = allowed[token.lowercased()], !roles.isDisjoint(with: mine) { return true }
        return false
    }
}
