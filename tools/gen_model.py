#!/usr/bin/env python3
"""Turns the HealthImaging service model (botocore service-2.json) into C tables for src/api.

The API layer routes, decodes and validates every request from these tables rather than from
hand-written per-operation code, so the wire contract lives in one place: the model. Output is
deterministic (sorted, no timestamps), so re-running the generator on the same model gives the same
bytes and the committed files can be checked with `git diff --exit-code`.

    tools/gen_model.py [MODEL] [OUT_DIR]

MODEL defaults to models/medical-imaging/2023-07-19/service-2.json in the source tree (see
models/README.md); OUT_DIR to src/api. Writes model_ids.h (operation and shape ids) and
model_table.c.

Patterns: the model writes Java regular expressions. We check them with POSIX extended regular
expressions (regcomp), anchored as whole-string matches, so each pattern is translated here:
  \\d -> [0-9]; \\w inside or outside brackets -> [:alnum:]_ ; \\. and \\- inside brackets become
  literal characters placed where POSIX reads them literally; a '-' right after a range inside
  brackets ("0-9-_") is moved to the end; (?!aws:) at the start becomes a forbidden prefix checked
  separately; \\p{ASCII}{0,N} becomes an ASCII-only flag (the length bounds are checked anyway).
Any construct not handled here makes the generator fail, so a new model cannot slip through with a
pattern that POSIX would read differently.
"""
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
DEFAULT_MODEL = os.path.join(SRC, 'models', 'medical-imaging', '2023-07-19', 'service-2.json')


def c_str(s):
    if s is None:
        return 'NULL'
    out = '"'
    for ch in s:
        if ch in '"\\':
            out += '\\' + ch
        elif ch == '?':
            out += '\\?'  # keeps trigraph-like sequences harmless
        elif 32 <= ord(ch) < 127:
            out += ch
        else:
            out += '\\x%02x' % ord(ch)
    return out + '"'


def translate_bracket(body):
    """Translates the inside of a Java [...] class to a POSIX bracket expression body."""
    items = []  # list of strings: single chars, ranges "a-z", or classes "[:alnum:]"
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == '\\':
            esc = body[i + 1]
            i += 2
            if esc == 'd':
                items.append('0-9')
            elif esc == 'w':
                items.append('[:alnum:]')
                items.append('_')
            elif esc in '.-$/':
                items.append(esc)
            else:
                raise SystemExit('unsupported escape \\%s in bracket [%s]' % (esc, body))
            continue
        if i + 2 < len(body) and body[i + 1] == '-' and body[i + 2] not in ']\\':
            items.append(body[i:i + 3])
            i += 3
            continue
        items.append(ch)
        i += 1
    # POSIX: ']' first, '-' last, '^' not first; single chars otherwise anywhere.
    dash = '-' in items
    items = [x for x in items if x != '-']
    if items and items[0] == '^':
        items = items[1:] + ['^']
    out = ''.join(items) + ('-' if dash else '')
    return out


def translate_pattern(pat):
    """Returns (posix_regex or None, forbidden_prefix or None, ascii_only)."""
    forbidden = None
    m = re.match(r'^\(\?!([^()\[\]\\*+?{}|]+)\)', pat)
    if m:
        forbidden = m.group(1)
        pat = pat[m.end():]
    if re.fullmatch(r'\\p\{ASCII\}\{0,\d+\}', pat):
        return None, forbidden, True
    out = ''
    i = 0
    while i < len(pat):
        ch = pat[i]
        if ch == '\\':
            esc = pat[i + 1]
            i += 2
            if esc == 'd':
                out += '[0-9]'
            elif esc == 'w':
                out += '[[:alnum:]_]'
            elif esc in '.$-/()[]{}*+?|^':
                out += '\\' + esc if esc in '.$()[]{}*+?|^' else esc
            else:
                raise SystemExit('unsupported escape \\%s in %r' % (esc, pat))
            continue
        if ch == '[':
            j = i + 1
            if j < len(pat) and pat[j] == '^':
                j += 1
            if j < len(pat) and pat[j] == ']':
                j += 1
            while pat[j] != ']':
                j += 2 if pat[j] == '\\' else 1
            body = pat[i + 1:j]
            neg = body.startswith('^')
            if neg:
                body = body[1:]
            out += '[' + ('^' if neg else '') + translate_bracket(body) + ']'
            i = j + 1
            continue
        if ch == '(' and pat[i + 1:i + 2] == '?':
            raise SystemExit('unsupported group construct in %r' % pat)
        out += ch
        i += 1
    return '^(' + out + ')$', forbidden, False


def main():
    model_path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_MODEL
    out_dir = sys.argv[2] if len(sys.argv) > 2 else os.path.join(SRC, 'src', 'api')
    with open(model_path) as f:
        model = json.load(f)
    shapes = model['shapes']
    ops = model['operations']

    # Every shape reachable from an operation's input, plus the error shapes: the ids are stable
    # because they follow sorted names.
    reach = set()

    def walk(name):
        if name in reach:
            return
        reach.add(name)
        s = shapes[name]
        if s['type'] == 'structure':
            for m in s['members'].values():
                walk(m['shape'])
        elif s['type'] == 'list':
            walk(s['member']['shape'])
        elif s['type'] == 'map':
            walk(s['key']['shape'])
            walk(s['value']['shape'])

    for op in ops.values():
        walk(op['input']['shape'])
    names = sorted(reach)
    index = {n: i for i, n in enumerate(names)}
    errors = sorted(n for n, s in shapes.items() if s.get('exception'))

    types = {'string': 'AHL_MT_STRING', 'integer': 'AHL_MT_INTEGER', 'long': 'AHL_MT_INTEGER',
             'boolean': 'AHL_MT_BOOLEAN', 'timestamp': 'AHL_MT_TIMESTAMP', 'blob': 'AHL_MT_BLOB',
             'structure': 'AHL_MT_STRUCTURE', 'list': 'AHL_MT_LIST', 'map': 'AHL_MT_MAP',
             'float': 'AHL_MT_REAL', 'double': 'AHL_MT_REAL'}
    locs = {None: 'AHL_LOC_BODY', 'uri': 'AHL_LOC_URI', 'querystring': 'AHL_LOC_QUERY',
            'header': 'AHL_LOC_HEADER'}

    hdr = []
    hdr.append('/* Generated by tools/gen_model.py from the service model; do not edit. */')
    hdr.append('/* clang-format off */')
    hdr.append('#ifndef AHL_API_MODEL_IDS_H')
    hdr.append('#define AHL_API_MODEL_IDS_H')
    hdr.append('')
    hdr.append('/* API version %s, protocol %s, signing name %s. */' % (
        model['metadata']['apiVersion'], model['metadata']['protocol'],
        model['metadata']['signingName']))
    hdr.append('enum ahl_op_id {')
    opnames = sorted(ops)
    for n in opnames:
        hdr.append('    AHL_OP_%s,' % n)
    hdr.append('    AHL_OP__COUNT')
    hdr.append('};')
    hdr.append('')
    hdr.append('enum ahl_shape_id {')
    for n in names:
        hdr.append('    AHL_SHAPE_%s,' % n)
    hdr.append('    AHL_SHAPE__COUNT')
    hdr.append('};')
    hdr.append('')
    hdr.append('#endif /* AHL_API_MODEL_IDS_H */')

    c = []
    c.append('/* Generated by tools/gen_model.py from the service model; do not edit.')
    c.append(' * The operation and input-shape tables that route, decode and validate requests. */')
    c.append('/* clang-format off */')
    c.append('#include "api/model.h"')
    c.append('')
    c.append('#include <stddef.h>')
    c.append('')
    for n in names:
        s = shapes[n]
        if 'enum' in s:
            c.append('static const char *const enum_%s[] = {%s};' % (
                n, ', '.join(c_str(v) for v in s['enum'])))
    c.append('')
    for n in names:
        s = shapes[n]
        if s['type'] != 'structure':
            continue
        req = set(s.get('required', []))
        c.append('static const struct ahl_model_member members_%s[] = {' % n)
        for mn in s['members']:
            m = s['members'][mn]
            loc = m.get('location')
            flags = []
            if mn in req:
                flags.append('AHL_MEMBER_REQUIRED')
            if m.get('idempotencyToken'):
                flags.append('AHL_MEMBER_IDEMPOTENCY_TOKEN')
            if s.get('payload') == mn:
                flags.append('AHL_MEMBER_PAYLOAD')
            c.append('    {%s, AHL_SHAPE_%s, %s, %s, %s},' % (
                c_str(mn), m['shape'], locs[loc], c_str(m.get('locationName', mn)),
                ' | '.join(flags) or '0'))
        c.append('};')
    c.append('')
    c.append('const struct ahl_model_shape ahl_model_shapes[AHL_SHAPE__COUNT] = {')
    for n in names:
        s = shapes[n]
        regex, forbidden, ascii_only = (None, None, False)
        if 'pattern' in s:
            regex, forbidden, ascii_only = translate_pattern(s['pattern'])
        flags = []
        if s.get('union'):
            flags.append('AHL_SHAPE_UNION')
        if ascii_only:
            flags.append('AHL_SHAPE_ASCII_ONLY')
        if s.get('sensitive'):
            flags.append('AHL_SHAPE_SENSITIVE')
        if 'min' in s:
            flags.append('AHL_SHAPE_HAS_MIN')
        if 'max' in s:
            flags.append('AHL_SHAPE_HAS_MAX')
        elem = key = value = 'AHL_SHAPE__COUNT'
        if s['type'] == 'list':
            elem = 'AHL_SHAPE_' + s['member']['shape']
        if s['type'] == 'map':
            key = 'AHL_SHAPE_' + s['key']['shape']
            value = 'AHL_SHAPE_' + s['value']['shape']
        c.append('    [AHL_SHAPE_%s] = {' % n)
        c.append('        .name = %s,' % c_str(n))
        c.append('        .type = %s,' % types[s['type']])
        c.append('        .flags = %s,' % (' | '.join(flags) or '0'))
        if 'min' in s:
            c.append('        .min = %d,' % s['min'])
        if 'max' in s:
            c.append('        .max = %d,' % s['max'])
        if 'pattern' in s:
            c.append('        .pattern = %s,' % c_str(s['pattern']))
        if regex:
            c.append('        .regex = %s,' % c_str(regex))
        if forbidden:
            c.append('        .forbidden_prefix = %s,' % c_str(forbidden))
        if 'enum' in s:
            c.append('        .enum_values = enum_%s,' % n)
            c.append('        .n_enum = %d,' % len(s['enum']))
        if s['type'] == 'structure':
            c.append('        .members = members_%s,' % n)
            c.append('        .n_members = %d,' % len(s['members']))
        c.append('        .element = %s,' % elem)
        c.append('        .key = %s,' % key)
        c.append('        .value = %s,' % value)
        c.append('    },')
    c.append('};')
    c.append('')
    for n in opnames:
        op = ops[n]
        c.append('static const char *const errors_%s[] = {%s, NULL};' % (
            n, ', '.join(c_str(e['shape']) for e in op.get('errors', []))))
    c.append('')
    c.append('const struct ahl_model_op ahl_model_ops[AHL_OP__COUNT] = {')
    for n in opnames:
        op = ops[n]
        s = shapes[op['input']['shape']]
        c.append('    [AHL_OP_%s] = {' % n)
        c.append('        .name = %s,' % c_str(n))
        c.append('        .method = %s,' % c_str(op['http']['method']))
        c.append('        .uri = %s,' % c_str(op['http']['requestUri']))
        c.append('        .status = %d,' % op['http'].get('responseCode', 200))
        c.append('        .input = AHL_SHAPE_%s,' % op['input']['shape'])
        c.append('        .payload = %s,' % c_str(s.get('payload')))
        c.append('        .host_prefix = %s,' % c_str(op.get('endpoint', {}).get('hostPrefix')))
        c.append('        .idempotent = %d,' % (1 if op.get('idempotent') else 0))
        c.append('        .errors = errors_%s,' % n)
        c.append('    },')
    c.append('};')
    c.append('')
    c.append('const struct ahl_model_error ahl_model_errors[] = {')
    for e in errors:
        s = shapes[e]
        c.append('    {%s, %d, %d},' % (c_str(e), s.get('error', {}).get('httpStatusCode', 400),
                                        0 if s.get('error', {}).get('senderFault') else 1))
    c.append('    {NULL, 0, 0},')
    c.append('};')

    def write(path, lines):
        text = '\n'.join(lines) + '\n'
        with open(path, 'w') as f:
            f.write(text)

    write(os.path.join(out_dir, 'model_ids.h'), hdr)
    write(os.path.join(out_dir, 'model_table.c'), c)


if __name__ == '__main__':
    main()
