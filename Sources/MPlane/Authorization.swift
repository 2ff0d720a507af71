/// Role-based authorisation as the RI configures it: `[Roles]` gives each identity its
/// comma-separated roles, `[Authorizations]` each capability (by label or token) the roles
/// allowed to see and use it. Without an `[Authorizations]` section everything is allowed;
/// with one, a capability it does not name is allowed to nobody (deny unless allowed).
///
/// The RI matches a name of `[Authorizations]` against any label that contains it (so that a
/// relabelled specification still matches); this matches a capability's label or token
/// exactly, so that `ping` does not also open `ping-burst`. The INI format lower-cases keys
/// (the RI's configparser too, so that its identities with capitals never match):
/// identities, labels and tokens are compared here byte for byte after lower-casing ASCII
/// letters only, so that two Unicode spellings of one name (a precomposed letter and a letter
/// with a combining accent, the Kelvin sign and a K) stay two names, as they are two
/// certificates.
public struct Authorization: Sendable, Equatable {
    /// Identity → roles, by the identity's key (``key(_:)``).
    var rolesByKey: [[UInt8]: Set<String>]
    /// Capability label or token → roles allowed, by key; nil when not configured (all allowed).
    var allowedByKey: [[UInt8]: Set<String>]?

    /// Everything allowed to everyone.
    public static let open = Authorization(roles: [:], allowed: nil)

    public init(roles: [String: Set<String>], allowed: [String: Set<String>]?) {
        func keyed(_ d: [String: Set<String>]) -> [[UInt8]: Set<String>] {
            var out: [[UInt8]: Set<String>] = [:]
            for (k, v) in d { out[Self.key(k), default: []].formUnion(v) }
            return out
        }
        rolesByKey = keyed(roles)
        allowedByKey = allowed.map(keyed)
    }

    /// From the `[Roles]` and `[Authorizations]` sections' entries (either may be absent).
    public init(rolesSection: [(String, String)]?, authorizationsSection: [(String, String)]?) {
        func sets(_ entries: [(String, String)]) -> [String: Set<String>] {
            var out: [String: Set<String>] = [:]
            for (key, value) in entries {
                let items = value.split(separator: ",").map { String($0.filter { $0 != " " && $0 != "\t" }) }.filter { !$0.isEmpty }
                out[key, default: []].formUnion(items)
            }
            return out
        }
        self.init(roles: sets(rolesSection ?? []), allowed: authorizationsSection.map(sets))
    }

    /// A name as compared here: its UTF-8 bytes, ASCII letters lower-cased.
    static func key(_ name: String) -> [UInt8] {
        name.utf8.map { $0 >= 0x41 && $0 <= 0x5a ? $0 + 0x20 : $0 }
    }

    /// Whether authorisations are configured.
    public var isEnforced: Bool { allowedByKey != nil }

    /// The roles of `identity`.
    public func roles(of identity: String) -> Set<String> { rolesByKey[Self.key(identity)] ?? [] }

    /// Whether `identity` may see and use `capability`.
    public func allows(_ identity: String, _ capability: Capability) -> Bool {
        allows(identity, label: capability.statement.label, token: capability.token)
    }

    /// Whether `identity` may see and use the capability with `label` and `token`.
    public func allows(_ identity: String, label: String?, token: String) -> Bool {
        guard let allowed = allowedByKey else { return true }
        guard let mine = rolesByKey[Self.key(identity)], !mine.isEmpty else { return false }
        if let label, let roles = allowed[Self.key(label)], !roles.isDisjoint(with: mine) { return true }
        if let roles = allowed[Self.key(token)], !roles.isDisjoint(with: mine) { return true }
        return false
    }

    /// Whether `identity` has `role`.
    public func has(_ identity: String, role: String) -> Bool { roles(of: identity).contains(role) }
}
