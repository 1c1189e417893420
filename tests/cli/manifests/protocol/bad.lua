-- Stages the protocol's kinds must refuse, on the micro world of micro_settings.lua; tests/cli/protocol.sh
-- picks one by editing CASE: unlearn with an unknown method, select keeping fewer people than it must forget,
-- evaluate asking for more rounds than the split has groups, unlearn asking for a round the split lacks, a split
-- naming a person both forgotten and retained (overlap.json, written by the test), a model whose tokenizer is
-- not one. world and base are micro.lua's (cached).
local s = require "micro_settings"
local CASE = "method"

local b = require "micro_base"
local with, w, model, data = b.with, b.w, b.model, b.data

local two = stage "select/two" (with({ kind = "select", group = "real", top = 8, forget = 4, rounds = 2 }, model,
  data))

if CASE == "method" then
  stage "bad" (with({ kind = "unlearn", split = two.out.split, examples = w.out.pretrain, people = w.out.people,
    images = w.out.images, method = "foo" }, s.unlearn, model))
elseif CASE == "forget" then
  stage "bad" (with({ kind = "select", group = "real", top = 4, forget = 5 }, model, data))
elseif CASE == "tokenizer" then
  stage "bad" (with({ kind = "select", group = "real", top = 8, forget = 4 }, model, data,
    { tokenizer = w.out.people }))
elseif CASE == "rounds" then
  stage "bad" (with({ kind = "evaluate", split = two.out.split, rounds = 3 }, model, data))
elseif CASE == "round" then
  stage "bad" (with({ kind = "unlearn", split = two.out.split, examples = w.out.pretrain, people = w.out.people,
    images = w.out.images, round = 3 }, s.unlearn, model))
elseif CASE == "overlap" then
  local split = stage "overlap" { kind = "file", path = "overlap.json", type = "json" }
  stage "bad" (with({ kind = "evaluate", split = split.out.data }, model, data))
end
