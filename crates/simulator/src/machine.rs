//! The machine's own bookkeeping: the shot in progress and the saved history.

use meticulous::{CurrentShot, Entry, MachineEvent, RawJson, Sample, Sensors, Status};

/// What the simulated machine knows: the shot it is recording and the shots it saved.
#[derive(Debug, Default)]
pub struct Machine {
    /// Saved shots, oldest first.
    pub saved: Vec<Entry>,
    /// The shot being recorded.
    pub recording: Option<Entry>,
    /// Its backend is restarting: every request fails.
    pub down: bool,
    /// Its history lists nothing.
    pub history_off: bool,
    sensors: Option<Sensors>,
    extracting: bool,
    last_time: Option<i64>,
    shots: u64,
    /// Tells this machine's shot ids from other simulated machines' (a real machine's are
    /// random UUIDs): the process id and a counter of machines in the process.
    serial: (u16, u16),
    /// The profile to attach to saved shots.
    pub profile: Option<RawJson>,
    /// Its pairing firmware, when it runs one.
    pub firmware: Option<crate::pairing::Shared>,
}

impl Machine {
    /// A machine with no shots, its ids unlike any other simulated machine's.
    pub fn new() -> Self {
        static MACHINES: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
        Self {
            serial: (
                std::process::id() as u16,
                MACHINES.fetch_add(1, std::sync::atomic::Ordering::Relaxed) & 0x0fff,
            ),
            ..Self::default()
        }
    }

    /// Its serial number, as the pairing firmware signs it.
    pub fn serial_number(&self) -> String {
        format!("SIM-{:04x}-{:03x}", self.serial.0, self.serial.1)
    }

    /// The shot in progress, as `/api/v1/history/current` answers.
    pub fn current_shot(&self) -> Option<CurrentShot> {
        let e = self.recording.as_ref()?;
        Some(CurrentShot {
            id: e.id.clone(),
            time: e.time,
            profile_name: Some(e.name.clone()),
            data: e.data.clone(),
            profile: e.profile.clone(),
        })
    }

    /// The machine saw its own event go out (the history is built from the same data).
    pub fn observe(&mut self, event: &MachineEvent, unix_s: f64) {
        match event {
            MachineEvent::Status(status) => self.status(status, unix_s),
            MachineEvent::Sensors { sensors, .. } => {
                self.sensors
                    .get_or_insert_with(Sensors::default)
                    .update((**sensors).clone());
                // The readings of the tick complete its sample.
                if let Some(shot) = &mut self.recording
                    && let Some(last) = shot.data.last_mut()
                    && last.sensors.is_none()
                {
                    last.sensors = self.sensors.as_ref().map(Into::into);
                }
            }
            _ => {}
        }
    }

    fn status(&mut self, status: &Status, unix_s: f64) {
        let was = std::mem::replace(&mut self.extracting, status.extracting);
        if status.extracting && !was {
            self.shots += 1;
            let n = self.shots;
            self.recording = Some(Entry {
                // A UUID-shaped id, different for every shot of every simulated machine.
                id: format!(
                    "5b0d7c1e-{:04x}-4{:03x}-9d5e-{n:012x}",
                    self.serial.0, self.serial.1
                ),
                db_key: None,
                time: unix_s,
                file: Some(format!("sim/{n:06}.shot.json.zst")),
                debug_file: None,
                name: status
                    .profile
                    .clone()
                    .or_else(|| status.loaded_profile.clone())
                    .unwrap_or_default(),
                data: Vec::new(),
                profile: self.profile.clone(),
            });
            self.last_time = None;
        }
        if status.extracting {
            if let Some(shot) = &mut self.recording
                && self.last_time != Some(status.time)
            {
                self.last_time = Some(status.time);
                shot.data.push(Sample::from_live(status, None));
            }
        } else if was {
            self.save();
        }
    }

    /// Saves the shot in progress (the machine saves every shot, however short).
    fn save(&mut self) {
        if let Some(mut shot) = self.recording.take() {
            shot.db_key = Some(self.saved.len() as i64 + 1);
            self.saved.push(shot);
        }
    }

    /// The backend restarts: the shot in progress is lost, the state starts over.
    pub fn restart(&mut self) {
        self.recording = None;
        self.extracting = false;
        self.last_time = None;
    }
}
