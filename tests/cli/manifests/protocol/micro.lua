-- The whole PULSE graph (manifests/protocol.lua, which the test copies next to this file) on a micro world.
local protocol = require "protocol"
protocol(require "micro_settings")
