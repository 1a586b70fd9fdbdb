#!/usr/bin/python3
"""The layer check's own test: scripts/check-layers on small made-up trees in temp dirs.

Each case plants one include in a tree that otherwise keeps to its table, and asserts the exit
status and the exact lines the check prints (docs/architecture.md, "The layer rule").
"""

import os
import subprocess
import sys
import tempfile
import unittest

SOURCE_DIR = os.environ.get(
    "CLADE_SOURCE_DIR", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
)
CHECK = os.path.join(SOURCE_DIR, "scripts", "check-layers")

TABLE = """# Architecture

```
high
 └─ low
```

```layers
# layer: the layers it may include
proto:
low:
high: low proto
```
"""

LOW_README = """# src/low
Owns: low things. Public: `low.h`. Internal: `secret.h`,
`detail.h` (helpers). May use: nothing.
"""


class CheckLayersTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = self.tmp.name
        self.write("docs/architecture.md", TABLE)
        self.write("src/low/README.md", LOW_README)
        self.write("src/low/low.h", '#pragma once\n#include "low/internal/bits.h"\n')
        self.write("src/low/secret.h", "#pragma once\n")
        self.write("src/low/detail.h", "#pragma once\n")
        self.write("src/low/internal/bits.h", "#pragma once\n")
        self.write("src/high/high.cpp", '#include "high/high.h"\n#include "low/low.h"\n')
        self.write("src/high/high.h", "#pragma once\n#include <string>\n#include \"absl/x.h\"\n")

    def tearDown(self):
        self.tmp.cleanup()

    def write(self, rel, text):
        path = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)

    def run_check(self):
        r = subprocess.run(
            [sys.executable, CHECK, self.root], capture_output=True, text=True, check=False
        )
        return r.returncode, r.stdout, r.stderr

    def assert_refused(self, lines):
        rc, out, err = self.run_check()
        self.assertEqual(rc, 1, err)
        self.assertEqual(out, "")
        self.assertEqual(
            err.splitlines(),
            lines
            + [
                f"check-layers: {len(lines)} include(s) break the layer rule of "
                "docs/architecture.md"
            ],
        )

    def test_passes_includes_along_arrows_and_within_a_layer(self):
        self.write("src/high/gen.cpp", '#include "clade/v1/x.pb.h"\n#include <low/low.h>\n')
        rc, out, err = self.run_check()
        self.assertEqual((rc, err), (0, ""))
        self.assertEqual(
            out, "check-layers: 3 includes across layers in 2 layers keep to docs/architecture.md\n"
        )

    def test_refuses_an_include_against_the_arrows(self):
        self.write("src/low/up.cpp", '// comment\n#include "low/low.h"\n#include "high/high.h"\n')
        self.assert_refused(
            [
                'src/low/up.cpp:3: #include "high/high.h": no arrow low -> high in '
                "docs/architecture.md"
            ]
        )

    def test_refuses_a_proto_header_without_the_arrow(self):
        self.write("src/low/wire.cpp", '#include "clade/v1/x.pb.h"\n')
        self.assert_refused(
            [
                'src/low/wire.cpp:1: #include "clade/v1/x.pb.h": no arrow low -> proto in '
                "docs/architecture.md"
            ]
        )

    def test_refuses_an_angle_include_against_the_arrows(self):
        self.write("src/low/sub/up.h", "#  include <high/high.h>\n")
        self.assert_refused(
            [
                "src/low/sub/up.h:1: #include <high/high.h>: no arrow low -> high in "
                "docs/architecture.md"
            ]
        )

    def test_refuses_an_include_into_another_layers_internal_folder(self):
        self.write("src/high/peek.cpp", '#include "low/internal/bits.h"\n')
        self.assert_refused(
            ['src/high/peek.cpp:1: #include "low/internal/bits.h": low/internal/ is internal to '
             "src/low"]
        )

    def test_refuses_a_header_the_readme_lists_as_internal(self):
        self.write("src/high/peek.cpp", '#include "low/low.h"\n#include "low/detail.h"\n')
        self.assert_refused(
            ['src/high/peek.cpp:2: #include "low/detail.h": low/detail.h is internal to src/low '
             "(src/low/README.md)"]
        )

    def test_names_both_faults_of_one_include(self):
        self.write("src/low/up.cpp", '#include "high/internal/h.h"\n')
        self.assert_refused(
            [
                'src/low/up.cpp:1: #include "high/internal/h.h": no arrow low -> high in '
                "docs/architecture.md",
                'src/low/up.cpp:1: #include "high/internal/h.h": high/internal/ is internal to '
                "src/high",
            ]
        )

    def test_refuses_a_layer_without_a_line(self):
        self.write("src/extra/x.cpp", '#include "low/low.h"\n')
        rc, out, err = self.run_check()
        self.assertEqual((rc, out), (2, ""))
        self.assertEqual(
            err, "check-layers: src/extra/ has no line in the ```layers block of docs/architecture.md\n"
        )

    def test_refuses_a_readme_naming_a_missing_internal_header(self):
        os.remove(os.path.join(self.root, "src/low/detail.h"))
        rc, out, err = self.run_check()
        self.assertEqual((rc, out), (2, ""))
        self.assertEqual(
            err, "check-layers: src/low/README.md: internal header `detail.h` is not in src/low/\n"
        )

    def test_refuses_a_cycle_in_the_table(self):
        self.write("docs/architecture.md", TABLE.replace("low:\n", "low: high\n"))
        rc, out, err = self.run_check()
        self.assertEqual((rc, out), (2, ""))
        self.assertEqual(
            err, "check-layers: docs/architecture.md: the arrows make a cycle: high -> low -> high\n"
        )

    def test_refuses_a_doc_without_the_table(self):
        self.write("docs/architecture.md", "# Architecture\n")
        rc, out, err = self.run_check()
        self.assertEqual((rc, out), (2, ""))
        self.assertEqual(
            err,
            "check-layers: docs/architecture.md: no ```layers block (layer: allowed layers)\n",
        )


if __name__ == "__main__":
    unittest.main()
