package Test::Nginx::RtmpOrigin;
# A minimal RTMP server for relay tests: it takes the handshake, answers connect, createStream,
# play and publish as a server would, and writes every message it receives, decoded, to a JSON
# lines file, so a test can assert what our relays send (connect properties, play arguments,
# user control events). It sends no media.
#
#   my $o = rtmp_origin(port => $TEST_NGINX_RTMP_PORT2, log => "$TEST_NGINX_PREFIX/origin.jsonl");
#   ... wait_until(sub { grep { ($_->{cmd} // '') eq 'play' } origin_messages($o) }, 10) ...
#
# Each record: { conn => N (1 for the first connection accepted), seq => N (in that connection),
# type => the message type, msid, csid }, and by type: 1 chunk_size; 5 window; 4 event (the user
# control event type), stream_id, buffer_ms (SetBufferLength); 20 (and 17) cmd, tid, args
# (the values after the transaction id: null is undef, objects are hashes); other types len.
# Also { conn, event => 'accepted' | 'closed' | 'error', why }.
use strict;
use warnings;
use Exporter 'import';
use IO::Select;
use IO::Socket::INET;
use JSON::PP ();
use Test::Nginx::Rtmp ();
use POSIX ();

our @EXPORT_OK = qw(rtmp_origin origin_messages origin_connections origin_stop);

my $JSON = JSON::PP->new->canonical->allow_nonref;

# Starts the origin in a child process listening on 127.0.0.1:port (it listens before this
# returns). %opt: port, log (the records file), stream_id (what createStream answers, default 1).
# The child is stopped with the block's other background processes, or by origin_stop.
sub rtmp_origin {
    my %opt = @_;
    my $srv = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $opt{port}, Listen => 16, ReuseAddr => 1)
        or die "rtmp origin on port $opt{port}: $!";
    unlink $opt{log};
    my $pid = fork() // die "fork: $!";
    if (!$pid) {
        POSIX::setpgid(0, 0);
        eval { serve($srv, \%opt) };
        POSIX::_exit(0);
    }
    close $srv;
    $Test::Nginx::Rtmp::BG{$pid} = 'rtmp origin';
    return { pid => $pid, %opt };
}

sub origin_stop {
    my $o = shift;
    kill 'KILL', $o->{pid};
    waitpid($o->{pid}, 0);
    delete $Test::Nginx::Rtmp::BG{$o->{pid}};
}

# The records so far, in order (a line being written is left out).
sub origin_messages {
    my $o = shift;
    open my $fh, '<', $o->{log} or return ();
    my @r;
    while (my $line = <$fh>) {
        last unless $line =~ /\n\z/;
        push @r, $JSON->decode($line);
    }
    return @r;
}

# The records grouped by connection: { conn number => [records in order] }.
sub origin_connections {
    my $o = shift;
    my %c;
    push @{ $c{ $_->{conn} } }, $_ for origin_messages($o);
    return \%c;
}

# ---------------------------------------------------------------------------------------------
# The child

sub record {
    my ($opt, $r) = @_;
    open my $fh, '>>', $opt->{log} or return;
    print $fh $JSON->encode($r), "\n";
    close $fh;
}

sub serve {
    my ($srv, $opt) = @_;
    my $sel = IO::Select->new($srv);
    my (%conns, $n);
    while (1) {
        for my $fh ($sel->can_read(1)) {
            if ($fh == $srv) {
                my $c = $srv->accept or next;
                $n++;
                $conns{ fileno $c } = { sock => $c, conn => $n, seq => 0, buf => '', stage => 'c0c1', in_chunk => 128,
                                        cs => {} };
                $sel->add($c);
                record($opt, { conn => $n, event => 'accepted' });
                next;
            }
            my $st = $conns{ fileno $fh };
            my $r = sysread($fh, $st->{buf}, 65536, length $st->{buf});
            my %end;
            if (!$r) {
                %end = (event => 'closed');
            } elsif (!eval { input($st, $opt); 1 }) {
                %end = (event => 'error', why => "$@");
            }
            next unless %end;
            record($opt, { conn => $st->{conn}, %end });
            $sel->remove($fh);
            delete $conns{ fileno $fh };
            close $fh;
        }
    }
}

sub out {
    my ($st, $bytes) = @_;
    my $off = 0;
    while ($off < length $bytes) {
        my $w = syswrite($st->{sock}, $bytes, length($bytes) - $off, $off);
        die "write: $!\n" unless $w;
        $off += $w;
    }
}

# One message as chunks of 128 bytes (the default size: we never announce another).
sub message {
    my ($csid, $type, $msid, $payload) = @_;
    my $out = chr($csid) . "\0\0\0" . substr(pack('N', length $payload), 1) . chr($type) . pack('V', $msid);
    for (my $off = 0; $off < length $payload; $off += 128) {
        $out .= chr(0xc0 | $csid) if $off;
        $out .= substr($payload, $off, 128);
    }
    return $out;
}

sub input {
    my ($st, $opt) = @_;
    if ($st->{stage} eq 'c0c1') {
        return if length $st->{buf} < 1537;
        my $c1 = substr($st->{buf}, 1, 1536);
        substr($st->{buf}, 0, 1537) = '';
        out($st, "\x03" . ("\0" x 8) . join('', map { chr int rand 256 } 1 .. 1528) . $c1);
        $st->{stage} = 'c2';
    }
    if ($st->{stage} eq 'c2') {
        return if length $st->{buf} < 1536;
        substr($st->{buf}, 0, 1536) = '';
        $st->{stage} = 'chunks';
    }
    while (defined(my $m = next_message($st))) {
        on_message($st, $opt, @$m);
    }
}

# The next whole message of the chunk stream, as [type, msid, csid, payload], or undef until more
# bytes come.
sub next_message {
    my $st = shift;
    while (1) {
        my $b = $st->{buf};
        return undef if length $b < 1;
        my $b0 = ord $b;
        my ($fmt, $csid, $pos) = ($b0 >> 6, $b0 & 0x3f, 1);
        if ($csid == 0) {
            return undef if length $b < 2;
            ($csid, $pos) = (64 + ord(substr $b, 1, 1), 2);
        } elsif ($csid == 1) {
            return undef if length $b < 3;
            ($csid, $pos) = (64 + unpack('v', substr $b, 1, 2), 3);
        }
        my $cs = $st->{cs}{$csid} //= { partial => '', ext => 0 };
        my $mh = (11, 7, 3, 0)[$fmt];
        return undef if length $b < $pos + $mh;
        my $h = substr($b, $pos, $mh);
        $pos += $mh;
        if ($fmt <= 2) {
            $cs->{ext} = unpack('N', "\0" . substr($h, 0, 3)) == 0xffffff;
        }
        if ($fmt <= 1) {
            $cs->{len} = unpack('N', "\0" . substr($h, 3, 3));
            $cs->{type} = ord substr($h, 6, 1);
        }
        $cs->{msid} = unpack('V', substr($h, 7, 4)) if $fmt == 0;
        die "chunk of csid $csid without a previous header\n" unless defined $cs->{len};
        $pos += 4 if $cs->{ext};
        my $take = $cs->{len} - length $cs->{partial};
        $take = $st->{in_chunk} if $take > $st->{in_chunk};
        return undef if length $b < $pos + $take;
        $cs->{partial} .= substr($b, $pos, $take);
        substr($st->{buf}, 0, $pos + $take) = '';
        next if length $cs->{partial} < $cs->{len};
        my $payload = $cs->{partial};
        $cs->{partial} = '';
        return [$cs->{type}, $cs->{msid}, $csid, $payload];
    }
}

sub on_message {
    my ($st, $opt, $type, $msid, $csid, $payload) = @_;
    my %r = (conn => $st->{conn}, seq => ++$st->{seq}, type => $type, msid => $msid, csid => $csid);
    if ($type == 1) {
        $r{chunk_size} = unpack('N', $payload) & 0x7fffffff;
        $st->{in_chunk} = $r{chunk_size};
    } elsif ($type == 5) {
        $r{window} = unpack('N', $payload);
    } elsif ($type == 4) {
        $r{event} = unpack('n', $payload);
        $r{stream_id} = unpack('N', substr($payload, 2, 4)) if length $payload >= 6;
        $r{buffer_ms} = unpack('N', substr($payload, 6, 4)) if $r{event} == 3 && length $payload >= 10;
    } elsif ($type == 20 || $type == 17) {
        my $pos = $type == 17 ? 1 : 0;
        my @v;
        push @v, Test::Nginx::Rtmp::amf0_value($payload, \$pos) while $pos < length $payload;
        ($r{cmd}, $r{tid}, my @args) = @v;
        $r{args} = \@args;
    } else {
        $r{len} = length $payload;
    }
    record($opt, \%r);
    answer($st, $opt, $msid, \%r) if defined $r{cmd};
}

sub answer {
    my ($st, $opt, $msid, $r) = @_;
    my $status = sub {
        my ($code) = @_;
        amf_str('onStatus') . amf_num(0) . "\x05"
            . amf_obj(level => amf_str('status'), code => amf_str($code), description => amf_str($code));
    };
    if ($r->{cmd} eq 'connect') {
        out($st, message(3, 20, 0, amf_str('_result') . amf_num($r->{tid})
            . amf_obj(fmsVer => amf_str('FMS/3,0,1,123'), capabilities => amf_num(31))
            . amf_obj(level => amf_str('status'), code => amf_str('NetConnection.Connect.Success'),
                      description => amf_str('Connection succeeded.'), objectEncoding => amf_num(0))));
    } elsif ($r->{cmd} eq 'createStream') {
        out($st, message(3, 20, 0, amf_str('_result') . amf_num($r->{tid}) . "\x05" . amf_num($opt->{stream_id} // 1)));
    } elsif ($r->{cmd} eq 'play') {
        out($st, message(5, 20, $msid, $status->('NetStream.Play.Start')));
    } elsif ($r->{cmd} eq 'publish') {
        out($st, message(5, 20, $msid, $status->('NetStream.Publish.Start')));
    }
}

sub amf_num { "\x00" . pack('d>', $_[0]) }
sub amf_str { "\x02" . pack('n', length $_[0]) . $_[0] }

sub amf_obj {
    my @kv = @_;
    my $s = "\x03";
    while (my ($k, $v) = splice @kv, 0, 2) {
        $s .= pack('n', length $k) . $k . $v;
    }
    return $s . "\0\0\x09";
}


1;
