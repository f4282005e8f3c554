"""Checks a decoded response against the service model's output shape, so a client test proves
more than "the call returned": every member present is one the model names, required members are
there, strings match the model's enums, patterns and lengths, numbers are numbers, timestamps are
what the client makes of epoch seconds. Used by the AWS CLI suites (whose JSON output is the model
shape with timestamps as numbers or ISO strings) and usable with boto3 results (datetime objects;
streaming blobs are skipped)."""
import datetime
import re

import ahltest

_MODEL = None


def _model():
    global _MODEL
    if _MODEL is None:
        ahltest._ensure_model()
        import botocore.session
        _MODEL = botocore.session.get_session().get_service_model('medical-imaging')
    return _MODEL


def output_shape(operation):
    return _model().operation_model(operation).output_shape


def check(value, shape, where='$'):
    """Returns a list of problems (empty when value fits shape)."""
    problems = []
    _walk(value, shape, where, problems, 0)
    return problems


def _walk(value, shape, where, problems, depth):
    if depth > 32:
        problems.append('%s: nested too deeply' % where)
        return
    t = shape.type_name
    if t == 'structure':
        if not isinstance(value, dict):
            problems.append('%s: expected an object, got %r' % (where, type(value).__name__))
            return
        members = shape.members
        for k, v in value.items():
            if k == 'ResponseMetadata':
                continue
            if k not in members:
                problems.append('%s: member %r is not in %s' % (where, k, shape.name))
                continue
            _walk(v, members[k], '%s.%s' % (where, k), problems, depth + 1)
        for req in shape.required_members:
            if req not in value and members[req].serialization.get('location') is None \
                    and not members[req].serialization.get('eventstream') \
                    and members[req].type_name != 'blob':
                problems.append('%s: required member %r missing' % (where, req))
    elif t == 'list':
        if not isinstance(value, list):
            problems.append('%s: expected a list' % where)
            return
        for i, v in enumerate(value):
            _walk(v, shape.member, '%s[%d]' % (where, i), problems, depth + 1)
    elif t == 'map':
        if not isinstance(value, dict):
            problems.append('%s: expected a map' % where)
            return
        for k, v in value.items():
            _walk(k, shape.key, '%s<key %r>' % (where, k), problems, depth + 1)
            _walk(v, shape.value, '%s[%r]' % (where, k), problems, depth + 1)
    elif t == 'string':
        if not isinstance(value, str):
            problems.append('%s: expected a string, got %r' % (where, value))
            return
        meta = shape.metadata
        if shape.enum and value not in shape.enum:
            problems.append('%s: %r is not one of %s' % (where, value, shape.enum))
        if 'min' in meta and len(value) < meta['min']:
            problems.append('%s: shorter than %d' % (where, meta['min']))
        if 'max' in meta and len(value) > meta['max']:
            problems.append('%s: longer than %d' % (where, meta['max']))
        if 'pattern' in meta and not re.fullmatch(meta['pattern'], value):
            problems.append('%s: %r does not match %s' % (where, value, meta['pattern']))
    elif t in ('integer', 'long'):
        if not isinstance(value, int) or isinstance(value, bool):
            problems.append('%s: expected an integer, got %r' % (where, value))
        else:
            meta = shape.metadata
            if 'min' in meta and value < meta['min']:
                problems.append('%s: %d below %d' % (where, value, meta['min']))
            if 'max' in meta and value > meta['max']:
                problems.append('%s: %d above %d' % (where, value, meta['max']))
    elif t == 'boolean':
        if not isinstance(value, bool):
            problems.append('%s: expected a boolean' % where)
    elif t == 'timestamp':
        if isinstance(value, datetime.datetime):
            return
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return
        if isinstance(value, str):
            try:
                datetime.datetime.fromisoformat(value)
                return
            except ValueError:
                pass
        problems.append('%s: %r is not a timestamp' % (where, value))
    elif t in ('float', 'double'):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            problems.append('%s: expected a number' % where)
    # blobs (streams, files written by the CLI) are checked by the tests themselves


def assert_output(testcase, operation, value):
    """Fails testcase unless value fits operation's output shape."""
    problems = check(value, output_shape(operation))
    testcase.assertEqual(problems, [], '%s output: %r' % (operation, value))
