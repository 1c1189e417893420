-- Shared settings: every manifest in this folder requires this module, so a value changes in one place.
return {
  seed = 7,
  parts = 4,             -- how many independent source stages
  bytes = 4 * 1024 * 1024,
}
