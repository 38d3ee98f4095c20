//! About the tracker itself: CAP after registration, VERSION, TIME, INFO.

use super::super::replies;
use super::super::shared::ConnId;
use super::chat::Chat;
use crate::proto::Message;
use crate::proto::caps::CapAnswer;

impl Chat {
    pub(super) fn cap(&mut self, id: ConnId, msg: &Message) {
        let server = self.config.server_name.clone();
        let accounts = self.accounts.enabled;
        // Each connection negotiates for itself.
        let conn = self.here(id);
        let Some(u) = self.state.users.get_mut(&id) else {
            return;
        };
        let nick = u.nick.clone();
        let sub = msg.param_at(0).unwrap_or("").to_ascii_uppercase();
        let Some(link) = u.links.iter_mut().find(|l| l.conn == conn) else {
            return;
        };
        match link
            .caps
            .answer(&sub, msg.param_at(1).unwrap_or(""), accounts)
        {
            CapAnswer::Reply(verb, list) => {
                let m = Message::new("CAP")
                    .with_source(server)
                    .param(nick)
                    .param(verb)
                    .param(list);
                self.send_msg(id, m);
            }
            CapAnswer::End => {}
            CapAnswer::Invalid => self.reply(id, replies::invalid_cap_command(&sub)),
        }
    }

    /// PONG, in order with every other reply to this member.
    pub(super) fn pong(&mut self, id: ConnId, token: &str) {
        // Echoed whole unless absurdly long (the reply must fit in 512
        // bytes).
        let token = crate::proto::sanitize::clip(token, 400).to_string();
        let server = self.config.server_name.clone();
        let m = Message::new("PONG")
            .with_source(server.clone())
            .param(server)
            .param(token);
        self.send_msg(id, m);
    }

    pub(super) fn version(&mut self, id: ConnId) {
        let server = self.config.server_name.clone();
        let version = concat!("confab-", env!("CARGO_PKG_VERSION"));
        self.reply(
            id,
            replies::version(version, &server, "self-hosted group chat for terminals"),
        );
        let tokens = self.isupport_tokens();
        for chunk in tokens.chunks(12) {
            self.reply(id, replies::isupport(chunk));
        }
    }

    pub(super) fn time(&mut self, id: ConnId) {
        let server = self.config.server_name.clone();
        self.reply(id, replies::time(&server, self.clock.wall));
    }

    pub(super) fn info(&mut self, id: ConnId) {
        let lines = [
            format!("confab {}", crate::VERSION),
            "Self-hosted group chat for terminals, speaking IRC.".to_string(),
            format!(
                "This tracker records everything said, direct messages included, in {}.",
                self.config.log_path_shown
            ),
            format!(
                "Started {}.",
                self.config.started.strftime("%Y-%m-%d %H:%M:%S UTC")
            ),
        ];
        for l in &lines {
            self.reply(id, replies::info(l));
        }
        self.reply(id, replies::end_of_info());
    }
}
