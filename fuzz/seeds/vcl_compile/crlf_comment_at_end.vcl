sub	su
#
