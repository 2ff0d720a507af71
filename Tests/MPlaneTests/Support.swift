import MPlaneTestSupport

/// Recorded exchanges of the reference implementation (a copy of shared/wire, so the tests
/// need nothing outside the repository).
let wireDirectory = repoRoot + "/Tests/Fixtures/wire"
