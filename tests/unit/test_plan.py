"""What the compiled engine's C path does with a profile, decided in plain Python."""

import re

from gateway.smdr import plan
from gateway.smdr import profiles
from gateway.smdr.plan import OP_ANY, OP_NONEMPTY, OP_PLAIN, OP_PREFIX, OP_REGEX, TARGET_X


def test_each_rule_pattern_gets_the_cheapest_operation_that_reads_it_exactly():
    out = plan.Plan()
    kinds = [plan._operation(out, 0, re.compile(p))[1:3] for p in
             (r"(?P<ext>.*)", r"(?P<ext>.+)", r"T(?P<trunk>.+)", r"IN|OUT", r"(?P<x_cd>\d+)-(?P<acct>.*)")]
    assert kinds == [(OP_ANY, plan.FILLED.index("ext")), (OP_NONEMPTY, plan.FILLED.index("ext")),
                     (OP_PREFIX, plan.FILLED.index("trunk")), (OP_PLAIN, -1), (OP_REGEX, -1)]
    assert out.prefixes == [b"T"] and out.x_names == ["cd"]
    assert out.regex_targets[-1] == {"x_cd": TARGET_X, "acct": plan.FILLED.index("acct")}
    assert out.caches[-1].pattern == "IN|OUT"  # a groupless pattern's answers are cached per text


def test_the_c_path_reads_every_shipped_profile_but_those_it_cannot():
    """Cisco has IPv4 fields, Asterisk, FreeSWITCH and 3CX a ring that is one column less
    another, NEC lines that continue a record: the reference reads those. Variants chosen
    by a pattern (Alcatel's blocks, Mitel MiVoice Business's options) the C path reads."""
    unsupported = {p.name for p in profiles.load_all() if not plan.plan(p).supported}
    assert unsupported == {"cisco-cucm", "asterisk-csv", "freeswitch-csv", "3cx", "nec-sl"}


def test_a_plan_is_a_set_of_flat_tables_of_small_integers():
    tables = plan.plan(profiles.find("avaya-ipo"))
    assert len(tables.var_pos) == 2 * tables.n_columns * len(tables.var_max)
    assert all(len(row) == 6 for row in tables.ops) and all(len(row) == 4 for row in tables.conversions)
    assert tables.caches[:2] == [None, None]  # the date and time caches come first
    first, n_ops, first_set, n_sets = tables.rules[-1]
    assert first + n_ops == len(tables.ops) and first_set + n_sets == len(tables.sets)
