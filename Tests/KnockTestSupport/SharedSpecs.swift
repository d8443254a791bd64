/// Specs more than one test target loads.
enum SharedSpecs {
    /// The longest names, and names of every character a name may hold, in every place a
    /// name reaches the output: set names, element comments, rule comments.
    static let longestNames = """
        table: Zz-_0123456789abcdefghijklmnopqr
        allow: [203.0.113.5]
        limits: { wrong_knocks: 5/minute, ban_for: 10m }
        decoys: [tcp/23]
        sequences:
          abcdefghijklmnopqrstuvwxyz-_0123:
            knock: [tcp/7000, udp/9000, tcp/8000, icmp/100]
            open: [tcp/22, udp/53]
            close: [udp/9000, tcp/7000]
            strict: true
            from: [192.0.2.0/24, 2001:db8::/48]
            allow: [198.51.100.7]
            deny: [192.0.2.66, 2001:db8::66]
            limits: { wrong_knocks: 2/second }
          "-":
            knock: [tcp/7100, udp/9100, tcp/8100]
            open: [tcp/2222]
            from: [0.0.0.0/0, "::/0"]
            deny: [192.0.2.0/25]
          "_":
            knock: [udp/7200, tcp/7300, udp/7100]
            open: [tcp/443]
            strict: true
            close: [tcp/6000]
          "0123456789012345678901234567890-":
            knock: [icmp/1232, icmp/1, icmp/1232]
            open: [tcp/8443]
        """
}
