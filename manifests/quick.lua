-- quick.lua: the same graph as pulse.lua on a small world with short schedules: minutes on a laptop. The
-- numbers it reports show the pipeline working, not the protocol's findings (use pulse.lua for those).
--   pulse-pipe cat report markdown
--   pulse-pipe cat world contact_sheet > sheet.png
local s = require "settings"
local protocol = require "protocol"

local q = {}
for k, v in pairs(s) do q[k] = v end
for k, v in pairs(s.quick) do q[k] = v end
protocol(q)
