optimizer o(lr = 1e-3) {
  other: scale(lr) $ -> sign
}
# CHECK:STDERR
# UnexpectedCharacter.opal:2:20: error: unexpected character `$` [UnexpectedCharacter]
#  2 |   other: scale(lr) $ -> sign
#    |                    ^
#    = help: comments start with `#`
# 1 error reported
