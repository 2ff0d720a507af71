/// An error from the information model or its codec.
///
/// Errors are compared by ``code``; ``field`` names the part of the message that was wrong
/// (`"parameters.source.ip4"`, `"when"`, `"resultvalues[3]"`, ...), ``message`` says why in
/// words an operator can act on.
public struct MPlaneError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of problem this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let raw: String
        public var description: String { raw }

        /// The bytes are not well-formed JSON, or exceed a size or nesting bound.
        public static let malformedJSON = Code(raw: "malformed-json")
        /// The JSON object is not an mPlane message (no known kind key).
        public static let unknownMessageKind = Code(raw: "unknown-message-kind")
        /// The message's `version` is above the one we speak.
        public static let unsupportedVersion = Code(raw: "unsupported-version")
        /// A section the message kind needs is absent.
        public static let missingSection = Code(raw: "missing-section")
        /// A section has the wrong JSON type.
        public static let invalidSection = Code(raw: "invalid-section")
        /// An element name the registry does not define.
        public static let unknownElement = Code(raw: "unknown-element")
        /// A registry URI that is not loaded (we never fetch registries from the network).
        public static let unknownRegistry = Code(raw: "unknown-registry")
        /// A registry document that is malformed.
        public static let invalidRegistry = Code(raw: "invalid-registry")
        /// A value its primitive cannot parse.
        public static let invalidValue = Code(raw: "invalid-value")
        /// A constraint that cannot be parsed.
        public static let invalidConstraint = Code(raw: "invalid-constraint")
        /// A temporal scope (`when`) that cannot be parsed.
        public static let invalidTemporalScope = Code(raw: "invalid-temporal-scope")
        /// A result row whose width differs from the number of result columns.
        public static let resultRowWidth = Code(raw: "result-row-width")
        /// A message that is well-formed but inconsistent (a specification without values, ...).
        public static let invalidMessage = Code(raw: "invalid-message")
    }

    public var code: Code
    public var field: String
    public var message: String

    public init(_ code: Code, field: String, _ message: String) {
        self.code = code
        self.field = field
        self.message = message
    }

    public var description: String {
        field.isEmpty ? "\(code): \(message)" : "\(code) at \(field): \(message)"
    }

    public static func == (lhs: MPlaneError, rhs: MPlaneError) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }

    /// The same error with `prefix` put in front of its field path.
    func within(_ prefix: String) -> MPlaneError {
        var copy = self
        copy.field = field.isEmpty ? prefix : "\(prefix).\(field)"
        return copy
    }
}
