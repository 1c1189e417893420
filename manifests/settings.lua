-- Shared settings: every manifest in this folder requires this module, so a value changes in one place.
return {
  seed = 1,
  -- The full PULSE-Synth world: MLLMU-Bench's sizes (153 celebrities, 500 fictitious profiles).
  world = { real = 153, fictitious = 500, general_eval = 400, general_train = 3000 },
  -- The quick world: the same graph in minutes. 45 real people is the protocol's top-45 selection at its
  -- smallest; 60 fictitious people cover the 50 forgotten in the sustainability rounds.
  quick_world = { real = 60, fictitious = 60, general_eval = 100, general_train = 400 },
}
