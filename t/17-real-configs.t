# The real-config gate: every nginx-rtmp-module configuration that real operators published
# (../shared/compat/configs/NNN.conf) must pass `nginx -t` with our module, except the configs
# listed in t/real-configs.missing with exactly the directives we still lack.
#
# Each config is run the way an operator would run it here: its rtmp {} block as written, the
# main-level rtmp_* directives, the http locations that use RTMP-module directives (in one server
# on a free port), load_module our .so, nothing else. Host names in rtmp:// and http:// URLs go to
# 127.0.0.1 (no DNS here), absolute paths (hls_path, record_path, play dirs, logs, ...) under the
# test prefix, listen ports to free ones, template placeholders (INDEX.tsv names them) are filled,
# include lines dropped. When nginx -t stops at `unknown directive "X"`, every X is removed and
# nginx -t runs again, so one run finds all the directives a config lacks. Any other error
# ("is not allowed here", a rejected value, ...) is a directive we have refusing an operator's
# real usage: a bug, never listed as missing.
#
# Each accepted config then runs: nginx starts with it, FFmpeg publishes the test media through its
# first live application that needs nothing outside the test (no exec or pulls; access rules that
# let 127.0.0.1 in; its HTTP callbacks go to a server of the test that answers 200) while FFmpeg
# plays it, no worker dies, nothing above error is logged, and nginx stops on QUIT.
#
# TEST_NGINX_CONFIGS=031,077 runs only those; prove -v shows each config's result.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Cwd ();
use File::Basename ();
use File::Path ();
use Test::Nginx::Rtmp ();

my $ROOT = Test::Nginx::Rtmp::repo_root();
my $NGINX = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
my $MODULE = Test::Nginx::Rtmp::module_path();
my $CONFIGS = Cwd::abs_path("$ROOT/..") . '/shared/compat/configs';
my $LIST = "$ROOT/t/real-configs.missing";

plan skip_all => "no real configs: $CONFIGS is missing (the shared compat corpus is not here)"
    unless -d $CONFIGS;
plan skip_all => "module $MODULE not built (run cargo build --release)" unless -f $MODULE;
plan skip_all => "$NGINX not found (run scripts/setup)" unless -x $NGINX;

# Directives of nginx's HTTP side that belong to the RTMP module family (arut's stat and control,
# nginx-http-flv-module's flv_live and JSON stat): a location using one of them is kept.
my %HTTP_RTMP = map { $_ => 1 } qw(rtmp_stat rtmp_stat_stylesheet rtmp_stat_format rtmp_control flv_live);

# Main-level directives kept as written: the RTMP family's and the worker count (rtmp_auto_push
# depends on it). user, daemon, pid, error_log, include, load_module ... are the test's own.
sub keep_main { my $name = shift; return $name eq 'worker_processes' || $name =~ /^rtmp_/ }

# Directives whose arguments name directories (or, for access_log, a file) on the host.
my %DIR_ARGS = map { $_ => 1 } qw(hls_path dash_path record_path hls_key_path play rtmp_socket_dir);
my %FILE_ARGS = map { $_ => 1 } qw(access_log);

# Values for the template placeholders INDEX.tsv says a config has (filled as envsubst would).
my %PLACEHOLDER = (
    RTMP_PORT => '1935', HTTP_PORT => '8080', HTTPS_PORT => '8443',
    CASTER => 'caster', FFMPEG_CODEC => '-c copy', STREAM_URL => 'rtmp://127.0.0.1/live',
    TWITCH_STREAM_KEY => 'streamkey', AUDIO_ENDPOINT => 'rtmp://127.0.0.1/audio/stream',
    VIDEO_ENDPOINT => 'rtmp://127.0.0.1/video/stream', LOG_LEVEL => 'info', MAX_SIZE => '100M',
    CORS_ORIGIN => '*', PUBLISH_SECRET => 'secret', INSTREAM_TENANT_SERVER => '127.0.0.1',
    INSTREAM_TENANT_SERVER_PORT => '8000',
);

# ---------------------------------------------------------------------------------------------
# An nginx configuration tokenizer and parser (the rules of ngx_conf_read_token: `#` starts a
# comment only where a token could start, a word ends at whitespace, `;` or `{` but not at `}`,
# `${` stays in a word, quotes '...' "..." with backslash escapes).

# Returns a list of tokens { type => 'word'|';'|'{'|'}', raw, value, line }, or dies.
sub tokenize {
    my ($text) = @_;
    my @tokens;
    my ($i, $n, $line) = (0, length $text, 1);
    while ($i < $n) {
        my $c = substr($text, $i, 1);
        if ($c eq "\n") { $line++; $i++; next }
        if ($c =~ /[ \t\r]/) { $i++; next }
        if ($c eq '#') {
            $i++ while $i < $n && substr($text, $i, 1) ne "\n";
            next;
        }
        if ($c eq ';' || $c eq '{' || $c eq '}') {
            push @tokens, { type => $c, raw => $c, value => $c, line => $line };
            $i++;
            next;
        }
        my ($start, $first_line) = ($i, $line);
        if ($c eq '"' || $c eq "'") {
            $i++;
            while (1) {
                die "line $first_line: unterminated quoted string\n" if $i >= $n;
                my $d = substr($text, $i, 1);
                if ($d eq '\\') { $line++ if substr($text, $i + 1, 1) eq "\n"; $i += 2; next }
                $line++ if $d eq "\n";
                $i++;
                last if $d eq $c;
            }
            my $raw = substr($text, $start, $i - $start);
            push @tokens, { type => 'word', raw => $raw, value => unescape(substr($raw, 1, -1)),
                            quote => $c, line => $first_line };
            next;
        }
        while ($i < $n) {
            my $d = substr($text, $i, 1);
            if ($d eq '\\') { $i += 2; next }
            last if $d =~ /[ \t\r\n;]/;
            last if $d eq '{' && !($i > $start && substr($text, $i - 1, 1) eq '$');
            $i++;
        }
        my $raw = substr($text, $start, $i - $start);
        push @tokens, { type => 'word', raw => $raw, value => unescape($raw), line => $first_line };
    }
    return @tokens;
}

# nginx keeps a backslash except before a quote, a backslash, t, r or n.
sub unescape {
    my ($s) = @_;
    $s =~ s/\\(["'\\])|\\t|\\r|\\n/defined $1 ? $1 : ''/ge;
    return $s;
}

# Statements: { name, args => [word tokens], line, block => [statements] or undef }.
sub parse {
    my ($tokens, $depth) = @_;
    my @stmts;
    my @words;
    while (@$tokens) {
        my $t = shift @$tokens;
        if ($t->{type} eq 'word') { push @words, $t; next }
        if ($t->{type} eq '}') {
            die "line $t->{line}: unexpected \"}\"\n" if !$depth || @words;
            return \@stmts;
        }
        die "line $t->{line}: unexpected \"$t->{type}\"\n" unless @words;
        my ($name, @args) = @words;
        @words = ();
        my $st = { name => $name->{value}, args => \@args, line => $name->{line} };
        $st->{block} = parse($tokens, $depth + 1) if $t->{type} eq '{';
        push @stmts, $st;
    }
    die "unexpected end of file, expecting \";\" or \"}\"\n" if @words;
    die "unexpected end of file, expecting \"}\"\n" if $depth;
    return \@stmts;
}

sub parse_conf { my @t = tokenize($_[0]); return parse(\@t, 0) }

# Every statement of a tree, depth first.
sub walk {
    my ($stmts, $cb) = @_;
    for my $st (@$stmts) {
        $cb->($st);
        walk($st->{block}, $cb) if $st->{block};
    }
}

# The tree without the statements named $name (blocks with all they contain); returns how many went.
sub remove_directive {
    my ($stmts, $name) = @_;
    my $before = @$stmts;
    @$stmts = grep { $_->{name} ne $name } @$stmts;
    my $gone = $before - @$stmts;
    $gone += remove_directive($_->{block}, $name) for grep { $_->{block} } @$stmts;
    return $gone;
}

# A word token as written, or re-quoted when a mapping changed its value.
sub word_text {
    my ($t) = @_;
    return $t->{raw} unless $t->{changed};
    my $v = $t->{value};
    return $v if $v =~ /^[^\s;{}"'\\#]+$/;
    $v =~ s/(["\\])/\\$1/g;
    return qq{"$v"};
}

# Appends the statements as text to @$out, one per line; @$origin gets each line's source line.
sub emit {
    my ($stmts, $indent, $out, $origin) = @_;
    for my $st (@$stmts) {
        my $text = join ' ', $st->{name}, map { word_text($_) } @{ $st->{args} };
        if ($st->{block}) {
            push @$out, "$indent$text {";
            push @$origin, $st->{line};
            emit($st->{block}, "$indent    ", $out, $origin);
            push @$out, "$indent}";
            push @$origin, undef;
        } else {
            push @$out, "$indent$text;";
            push @$origin, $st->{line};
        }
    }
}

# ---------------------------------------------------------------------------------------------
# From a real config to one this machine can test

sub read_index {
    my %idx;
    open my $fh, '<', "$CONFIGS/INDEX.tsv" or return %idx;
    my @cols;
    while (my $l = <$fh>) {
        chomp $l;
        next if $l =~ /^#/ || $l !~ /\S/;
        my @f = split /\t/, $l, -1;
        if (!@cols) { @cols = @f; next }
        my %row;
        @row{@cols} = @f;
        $idx{ $row{num} } = \%row;
    }
    return %idx;
}

# The placeholder names INDEX.tsv's notes give as "template placeholders filled: A,B".
sub placeholders_of {
    my ($row) = @_;
    return () unless $row && ($row->{notes} // '') =~ /template placeholders filled:\s*([A-Z0-9_,]+)/;
    return split /,/, $1;
}

sub is_ip { my $h = shift; return $h =~ /^\d+\.\d+\.\d+\.\d+$/ || $h =~ /^\[/ }

# rtmp:// and http:// URLs name 127.0.0.1 instead of a host name (IP literals stay).
sub map_hosts {
    my ($s) = @_;
    $s =~ s{\b((?:rtmp|http)://)(\[[0-9A-Fa-f:.]+\]|[^/:\s"'?;]+)}{ $1 . (is_ip($2) ? $2 : '127.0.0.1') }ge;
    return $s;
}

# Builds the test configuration of one real config. Returns a hashref: main, rtmp, locations
# (statement trees), notes (what was changed), or dies with the reason.
sub adapt {
    my (%a) = @_;
    my ($text, $row, $prefix, $ports) = @a{qw(text row prefix ports)};
    my @notes;
    for my $ph (placeholders_of($row)) {
        my $v = $PLACEHOLDER{$ph} // die "no value for template placeholder $ph (add it to %PLACEHOLDER)\n";
        my $count = ($text =~ s/\$(?:\{\Q$ph\E\}|\Q$ph\E(?![A-Za-z0-9_]))/$v/g) || 0;
        push @notes, "placeholder $ph=$v ($count)";
    }
    my $tree = parse_conf($text);

    my (@main, @rtmp, @locations, %seen_loc);
    for my $st (@$tree) {
        if ($st->{name} eq 'rtmp' && $st->{block}) {
            push @rtmp, $st;
        } elsif ($st->{name} eq 'http' && $st->{block}) {
            for my $srv (grep { $_->{name} eq 'server' && $_->{block} } @{ $st->{block} }) {
                for my $loc (grep { $_->{name} eq 'location' && $_->{block} } @{ $srv->{block} }) {
                    my $uses = 0;
                    walk($loc->{block}, sub { $uses ||= $HTTP_RTMP{ $_[0]{name} } });
                    next unless $uses;
                    # Several servers may repeat a location; one server holds them here.
                    my $key = join ' ', map { $_->{value} } @{ $loc->{args} };
                    if ($seen_loc{$key}++) { push @notes, "duplicate location $key dropped"; next }
                    push @locations, $loc;
                }
            }
        } elsif (!$st->{block} && keep_main($st->{name})) {
            push @main, $st;
        }
    }

    my $in_rtmp = [ @main, @rtmp ];
    my $dropped = remove_directive($in_rtmp, 'include') + remove_directive(\@locations, 'include');
    push @notes, "$dropped include dropped" if $dropped;

    my $port_of = sub {
        my $p = shift;
        $ports->{$p} //= (Test::Nginx::Rtmp::free_ports(1))[0];
        return $ports->{$p};
    };
    walk($in_rtmp, sub {
        my $st = shift;
        my $name = $st->{name};
        if ($name eq 'listen' && @{ $st->{args} }) {
            my $t = $st->{args}[0];
            my $v = $t->{value};
            if ($v =~ /^\d+$/) { $v = $port_of->($v) }
            elsif ($v =~ /^(.*):(\d+)$/ && $v !~ /^unix:/) { $v = "$1:" . $port_of->($2) }
            if ($v ne $t->{value}) { $t->{value} = $v; $t->{changed} = 1 }
        }
        if ($name =~ /^on_/) {
            for my $t (grep { $_->{value} =~ m{^https?://} } @{ $st->{args} }) {
                my $v = $t->{value} =~ s{^https?://[^/]*}{"http://127.0.0.1:" . $port_of->('callbacks')}er;
                if ($v ne $t->{value}) { $t->{value} = $v; $t->{changed} = 1 }
            }
            push @notes, "$name to the callback server";
        }
        for my $t (@{ $st->{args} }) {
            if ($name !~ /^exec/) {
                my $v = map_hosts($t->{value});
                if ($v ne $t->{value}) { $t->{value} = $v; $t->{changed} = 1 }
            }
            my $dir = $DIR_ARGS{$name};
            next unless $dir || $FILE_ARGS{$name};
            my $v = $t->{value};
            next unless $v =~ m{^/} && $v !~ m{^/dev/};
            $v = "$prefix/root$v";
            File::Path::make_path($dir ? $v : File::Basename::dirname($v));
            $t->{value} = $v;
            $t->{changed} = 1;
        }
    });
    walk(\@locations, sub {
        for my $t (@{ $_[0]{args} }) {
            my $v = map_hosts($t->{value});
            if ($v ne $t->{value}) { $t->{value} = $v; $t->{changed} = 1 }
        }
    });
    return { main => \@main, rtmp => \@rtmp, locations => \@locations, notes => \@notes,
             callbacks => $ports->{callbacks} };
}

# The configuration text and, per line, the source line it came from.
sub render {
    my ($c, $http_port) = @_;
    my @out = ("load_module $MODULE;", 'pid logs/nginx.pid;', 'error_log logs/error.log info;',
               'events { worker_connections 1024; }');
    my @origin = (undef) x @out;
    emit($c->{main}, '', \@out, \@origin);
    emit($c->{rtmp}, '', \@out, \@origin);
    if (@{ $c->{locations} } || $c->{callbacks}) {
        my @head = ('http {', '    access_log logs/access.log;', '    client_body_temp_path tmp/client_body;',
                    '    proxy_temp_path tmp/proxy;', '    fastcgi_temp_path tmp/fastcgi;',
                    '    uwsgi_temp_path tmp/uwsgi;', '    scgi_temp_path tmp/scgi;');
        # The HTTP callbacks (on_publish, on_play, ...) get a yes.
        push @head, "    server { listen 127.0.0.1:$c->{callbacks}; location / { return 200; } }" if $c->{callbacks};
        push @head, '    server {', "        listen 127.0.0.1:$http_port;" if @{ $c->{locations} };
        push @out, @head;
        push @origin, (undef) x @head;
        if (@{ $c->{locations} }) {
            emit($c->{locations}, '        ', \@out, \@origin);
            push @out, '    }';
            push @origin, undef;
        }
        push @out, '}';
        push @origin, undef;
    }
    return (join("\n", @out) . "\n", \@origin);
}

# Runs nginx -t, removing each unknown directive until the config passes or fails for another
# reason. Returns { accepted, missing => [names], error (the other failure), warns => [lines] }.
sub check_config {
    my ($num, $c, $prefix, $http_port) = @_;
    my %r = (missing => [], warns => []);
    for my $round (1 .. 60) {
        my ($conf, $origin) = render($c, $http_port);
        open my $fh, '>', "$prefix/conf/nginx.conf" or die "$prefix/conf/nginx.conf: $!";
        print $fh $conf;
        close $fh;
        my ($code, $out, $err) = Test::Nginx::Rtmp::run_cmd(
            [$NGINX, '-t', '-p', "$prefix/", '-c', 'conf/nginx.conf', '-e', 'logs/error.log'],
            timeout => 20);
        my $output = $out . $err;
        # Where a line came from: "nginx.conf:12" -> "NNN.conf:34".
        $output =~ s{\Q$prefix\E/?conf/nginx\.conf:(\d+)}{
            defined $origin->[$1 - 1] ? "$num.conf:$origin->[$1 - 1]" : "generated nginx.conf:$1"
        }ge;
        my @lines = split /\n/, $output;
        if ($code == 0) {
            $r{accepted} = 1;
            $r{warns} = [ grep { /\[warn\]/ } @lines ];
            return \%r;
        }
        my ($first) = grep { /\[(?:emerg|alert|crit)\]/ } @lines;
        $first //= "nginx -t exit code $code: " . ($lines[0] // '(no output)');
        $first =~ s/^nginx: //;
        if ($first =~ /\[emerg\] unknown directive "([^"]+)"/) {
            my $name = $1;
            my $gone = remove_directive($c->{main}, $name) + remove_directive($c->{rtmp}, $name)
                + remove_directive($c->{locations}, $name);
            if (!$gone) {
                $r{error} = "$first (and the directive is not in the config to remove)";
                return \%r;
            }
            push @{ $r{missing} }, $name;
            next;
        }
        $r{error} = $first;
        return \%r;
    }
    $r{error} = 'too many unknown directives';
    return \%r;
}

# t/real-configs.missing: num => [directives].
sub read_list {
    my %list;
    open my $fh, '<', $LIST or return %list;
    while (my $l = <$fh>) {
        $l =~ s/#.*//;
        next unless $l =~ /\S/;
        my ($num, @names) = split ' ', $l;
        $list{$num} = [ sort @names ];
    }
    return %list;
}

# ---------------------------------------------------------------------------------------------
# Running an accepted config: nginx starts with it, and a stream goes through one of its live
# applications.

# Directives that make an application's clients depend on something this test does not run
# (commands, pulls), in the application or above it. (HTTP callbacks go to the test's own
# callback server, which says yes to everything.)
sub needs_outside { my $name = shift; return $name =~ /^(?:exec|pull$)/ }

# Whether the allow/deny statements of a block (in order, first match wins, as the access module
# reads them) let 127.0.0.1 do $what (publish or play).
sub local_allowed {
    my ($stmts, $what) = @_;
    for my $st (grep { $_->{name} eq 'allow' || $_->{name} eq 'deny' } @$stmts) {
        my ($kind, $addr) = map { $_->{value} } @{ $st->{args} };
        next unless defined $addr && $kind eq $what;
        next unless $addr eq 'all' || $addr eq '127.0.0.1' || $addr =~ m{^127\.0\.0\.\d+/(?:[89]|[12]\d|3[0-2])$}
            || $addr =~ m{^(?:0\.0\.0\.0/0|127\.0\.0\.0/8)$};
        return $st->{name} eq 'allow';
    }
    return 1;
}

# The applications a stream can go through as written: [port, application], those with `live on`
# and nothing of needs_outside() in them, their server or the rtmp block.
sub plain_live_apps {
    my ($c) = @_;
    my @apps;
    for my $rtmp (@{ $c->{rtmp} }) {
        my $outside = grep { !$_->{block} && needs_outside($_->{name}) } @{ $rtmp->{block} };
        for my $srv (grep { $_->{name} eq 'server' && $_->{block} } @{ $rtmp->{block} }) {
            my ($listen) = grep { $_->{name} eq 'listen' } @{ $srv->{block} };
            my ($port) = $listen && @{ $listen->{args} } ? $listen->{args}[0]{value} =~ /(\d+)$/ : ();
            next unless $port;
            my $srv_outside = $outside || grep { !$_->{block} && needs_outside($_->{name}) } @{ $srv->{block} };
            for my $app (grep { $_->{name} eq 'application' && $_->{block} } @{ $srv->{block} }) {
                my ($live, $busy) = (0, $srv_outside);
                walk($app->{block}, sub {
                    my $st = shift;
                    $live ||= $st->{name} eq 'live' && ($st->{args}[0]{value} // '') eq 'on';
                    $busy ||= needs_outside($st->{name});
                });
                $busy ||= !local_allowed($_, 'publish') || !local_allowed($_, 'play')
                    for $app->{block}, $srv->{block}, $rtmp->{block};
                push @apps, [$port, $app->{args}[0]{value}] if $live && !$busy;
            }
        }
    }
    return @apps;
}

# Starts nginx on the config nginx -t accepted (conf/nginx.conf in $prefix), publishes the test
# media through its first plain live application while FFmpeg plays it, checks that no worker
# died and nothing was logged above error, and stops nginx. Returns a list of failures.
sub run_config {
    my ($num, $c, $prefix) = @_;
    my @fail;
    my ($code, $out, $err) = Test::Nginx::Rtmp::run_cmd(
        [$NGINX, '-p', "$prefix/", '-c', 'conf/nginx.conf', '-e', 'logs/error.log'], timeout => 20);
    return ("nginx does not start: $out$err") if $code;
    my $master = Test::Nginx::Rtmp::wait_until(sub {
        my $p = Test::Nginx::Rtmp::slurp("$prefix/logs/nginx.pid");
        $p =~ /(\d+)/ ? $1 : 0;
    }, 5) or return ('no pid file');
    my @workers;
    Test::Nginx::Rtmp::wait_until(sub { @workers = Test::Nginx::Rtmp::worker_pids($master); @workers }, 5);
    push @fail, 'no worker process' unless @workers;
    my ($app) = plain_live_apps($c);
    if ($app && @workers) {
        my ($port, $name) = @$app;
        my $url = "rtmp://127.0.0.1:$port/$name/smoke";
        Test::Nginx::Rtmp::wait_until(sub { my $s = Test::Nginx::Rtmp::rtmp_connect_raw($port); close $s if $s; $s }, 5);
        my $pub = Test::Nginx::Rtmp::publish($url, loop => 1, timeout => 30);
        my $published = Test::Nginx::Rtmp::wait_until(sub {
            Test::Nginx::Rtmp::slurp("$prefix/logs/error.log") =~ /rtmp: live: publish "smoke"/
        }, 10);
        push @fail, "publish to $url not taken: " . Test::Nginx::Rtmp::publisher_log($pub) unless $published;
        my ($v) = $published ? Test::Nginx::Rtmp::count_frames($url, 2) : (0);
        push @fail, "FFmpeg played $v video frames of $url" if $published && $v < 20;
        Test::Nginx::Rtmp::stop($pub);
        note("    $num: $url: " . ($v // 0) . ' video frames');
    }
    my @gone = grep { !kill(0, $_) } @workers;
    push @fail, "worker(s) @gone died" if @gone;
    kill 'QUIT', $master;
    unless (Test::Nginx::Rtmp::wait_until(sub { !kill(0, $master) }, 10)) {
        push @fail, 'nginx did not stop on QUIT within 10 s';
        kill 'KILL', $master, Test::Nginx::Rtmp::worker_pids($master);
    }
    my @bad = grep { /\[(?:alert|crit|emerg)\]|exited on signal/ } split /\n/, Test::Nginx::Rtmp::slurp("$prefix/logs/error.log");
    push @fail, @bad;
    return @fail;
}

# ---------------------------------------------------------------------------------------------

# The tokenizer on what the real configs contain.
{
    my $toks = sub { join '|', map { $_->{type} eq 'word' ? $_->{value} : $_->{type} } tokenize($_[0]) };
    is($toks->(qq[a "b c" 'd;e' f\\ g; # x { ;\n]), 'a|b c|d;e|f\\ g|;', 'tokenizer: quotes, escapes, comments');
    is($toks->('application live_#key{ hls_path /mnt/#USER; }'), 'application|live_#key|{|hls_path|/mnt/#USER|;|}',
       'tokenizer: # inside a word, { ends a word');
    is($toks->('listen ${RTMP_PORT};x}'), 'listen|${RTMP_PORT}|;|x}', 'tokenizer: ${VAR} and } stay in a word');
    is($toks->(qq[exec ffmpeg -i a\n  -f "b c";]), 'exec|ffmpeg|-i|a|-f|b c|;', 'tokenizer: a statement over lines');
    my $tree = parse_conf("rtmp { server { application a { record all; recorder r { record all; } live on; } } }");
    is(remove_directive($tree, 'recorder') + remove_directive($tree, 'record'), 2, 'remove_directive: blocks and statements');
    my ($text) = render({ main => [], rtmp => $tree, locations => [] }, 0);
    like($text, qr/^rtmp \{\n    server \{\n        application a \{\n            live on;\n        \}/m,
         'render: what is left, one statement a line');
    is(word_text({ value => 'a b', changed => 1 }), '"a b"', 'render: a changed value with a space is quoted');
}

my %index = read_index();
my %listed = read_list();
ok(-f $LIST, 't/real-configs.missing exists');
my @files = sort glob("$CONFIGS/*.conf");
ok(scalar(@files), "real configs found in $CONFIGS");
my %only = map { $_ => 1 } split /[,\s]+/, $ENV{TEST_NGINX_CONFIGS} // '';
my $base = "$ROOT/target/t/real-configs-$$";
File::Path::remove_tree($base);

my ($accepted, $total, $ran, $streamed) = (0, 0, 0, 0);
my %found;
for my $file (@files) {
    my ($num) = File::Basename::basename($file) =~ /^(.+)\.conf$/;
    next if %only && !$only{$num};
    $total++;
    my $prefix = "$base/$num";
    File::Path::make_path("$prefix/conf", "$prefix/logs", "$prefix/tmp", "$prefix/root");
    my $text = do { local $/; open my $fh, '<', $file or die "$file: $!"; <$fh> };
    my %ports;
    my $c = eval { adapt(text => $text, row => $index{$num}, prefix => $prefix, ports => \%ports) };
    unless (ok($c, "$num: parsed and adapted")) {
        diag("$num: $@");
        next;
    }
    my $http_port = (Test::Nginx::Rtmp::free_ports(1))[0];
    my $r = check_config($num, $c, $prefix, $http_port);
    my @missing = sort @{ $r->{missing} };
    $found{$num} = \@missing;
    my $source = $index{$num} ? " ($index{$num}{source})" : '';
    if ($r->{accepted} && !@missing) {
        $accepted++;
        note("$num$source: accepted");
    } else {
        note("$num$source: missing " . (@missing ? join(' ', @missing) : 'nothing')
             . ($r->{error} ? "; then: $r->{error}" : ''));
    }
    note("    $num: $_") for @{ $c->{notes} }, @{ $r->{warns} };

    ok(!defined $r->{error}, "$num: nginx -t fails for nothing but missing directives")
        or diag("$num: $r->{error}");
    if ($r->{accepted} && !@missing) {
        my @fail = run_config($num, $c, $prefix);
        ok(!@fail, "$num: runs: nginx starts, a stream goes through a live application, it stops cleanly")
            or diag(join "\n", map { "$num: $_" } @fail);
        $ran++;
        $streamed++ if plain_live_apps($c);
    }
    if ($listed{$num}) {
        if (!@missing && !defined $r->{error}) {
            fail("$num: listed in t/real-configs.missing (@{ $listed{$num} }) but accepted now: remove its line");
        } else {
            is("@missing", "@{ $listed{$num} }", "$num: the missing directives are the listed ones");
        }
    } else {
        is("@missing", '', "$num: accepted (not listed in t/real-configs.missing)");
    }
}
for my $num (sort keys %listed) {
    next if %only;
    ok(-f "$CONFIGS/$num.conf", "$num: listed config exists");
}
diag("$accepted of $total accepted; $ran run, $streamed of them with a stream through a live application");

# The list as it should read, for updating t/real-configs.missing by hand after a change.
if (!Test::More->builder->is_passing) {
    diag("t/real-configs.missing for these results:\n"
         . join('', map { sprintf "%s  %s\n", $_, join ' ', @{ $found{$_} } } grep { @{ $found{$_} } } sort keys %found));
}

# ---------------------------------------------------------------------------------------------
# Fork directives we accept but do not implement (yet): nginx -t passes and warns naming each.

{
    my $prefix = "$base/ignored";
    File::Path::make_path("$prefix/conf", "$prefix/logs", "$prefix/tmp");
    my ($port) = Test::Nginx::Rtmp::free_ports(1);
    my $c = {
        main => [], locations => [],
        rtmp => parse_conf(<<"EOF"),
rtmp {
    log_interval 5s;
    server {
        listen 127.0.0.1:$port;
        log_size 1m;
        application live {
            live on;
            log_interval 10s;
        }
    }
}
EOF
    };
    my ($conf) = render($c, 0);
    open my $fh, '>', "$prefix/conf/nginx.conf" or die "$prefix/conf/nginx.conf: $!";
    print $fh $conf;
    close $fh;
    my ($code, $out, $err) = Test::Nginx::Rtmp::run_cmd(
        [$NGINX, '-t', '-p', "$prefix/", '-c', 'conf/nginx.conf', '-e', 'logs/error.log'], timeout => 20);
    is($code, 0, 'log_interval and log_size: nginx -t passes') or diag($out . $err);
    my @warns = grep { /\[warn\]/ } split /\n/, $out . $err;
    for my $name (qw(log_interval log_size)) {
        my @named = grep { /"\Q$name\E"/ } @warns;
        ok(scalar(@named), "$name: nginx -t warns naming it") or diag($out . $err);
    }
    is(scalar(grep { /"log_interval"/ } @warns), 2, 'log_interval: one warn line per use');
}

if (!$ENV{TEST_NGINX_NO_CLEAN} && Test::More->builder->is_passing) {
    File::Path::remove_tree($base);
} else {
    diag("test prefixes kept in $base");
}

done_testing();
