# A component parameter named like a stage input would never be read: an error, not a no-op.
component foo(w = 2.0) { u = u * w }
optimizer o(lr = 0.1) { other: foo -> scale(lr) }
# CHECK:STDERR
# ReservedName.opal:2:15: error: parameter `w` of component `foo` would be hidden by the parameter tensor `w` [ReservedName]
#  2 | component foo(w = 2.0) { u = u * w }
#    |               ^
#    = help: `u`, `g` and `w` are in scope in every stage: give the parameter another name
# 1 error reported
